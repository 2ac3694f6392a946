"""``python manage.py revoke_api_token PREFIX_OR_NAME``: revoke API keys, for good.

Given a key's prefix (the characters before the dot, shown by ``create_api_token`` and in the
admin) or a whole key, it revokes that key; given a client's name, every key of that client.
A revoked key is answered 401 ("was revoked") from then on; revoking cannot be undone.
"""

from django.core.management.base import BaseCommand, CommandError

from common.api_keys import ApiKeyError, api_key_revoke


class Command(BaseCommand):
    help = (
        "Revoke the API key with this prefix, or every key of the client with this name. "
        "A revoked key cannot be used again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("prefix_or_name", help="a key's prefix, or a client's name")

    def handle(self, *args, prefix_or_name: str, **options) -> None:
        try:
            revoked = api_key_revoke(prefix_or_name=prefix_or_name)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        if not revoked:
            self.stdout.write(f"Nothing to revoke: the keys of {prefix_or_name!r} already were.")
        for api_key in revoked:
            self.stdout.write(
                f"Revoked key {api_key.prefix}… ({api_key.name!r}) of client "
                f"{api_key.client.username!r}."
            )
