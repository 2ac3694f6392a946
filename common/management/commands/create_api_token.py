"""``python manage.py create_api_token NAME``: make a new API key for the client called NAME.

The key lets its bearer write (``Authorization: Token <key>``). It is printed once, on its
own line on standard output (so that a script can capture it); only its hash is stored, so it
cannot be shown again. Running the command again for the same NAME makes another key for the
same client (both work): to replace a key, make a new one, then ``revoke_api_token`` the old.
"""

from django.core.management.base import BaseCommand, CommandError

from common.api_keys import ApiKeyError, api_key_create


class Command(BaseCommand):
    help = (
        "Make a new API key for client NAME (creating the client if needed) and print it once. "
        "Run again for the same NAME, it makes another key for that client; the earlier keys "
        "keep working until revoked (revoke_api_token)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who the key is for, e.g. 'warehouse-import'")
        parser.add_argument(
            "--expires",
            type=float,
            metavar="DAYS",
            help="the key stops working after this many days (default: never)",
        )
        parser.add_argument(
            "--key-name",
            default="",
            metavar="LABEL",
            help="a label for this key, e.g. 'laptop 2026' (default: NAME; 50 characters max)",
        )

    def handle(self, *args, name: str, expires: float | None, key_name: str, **options) -> None:
        try:
            made = api_key_create(client_name=name, key_name=key_name, expires_in_days=expires)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        api_key = made.api_key
        expiry = (
            f"expires {api_key.expiry_date:%Y-%m-%d %H:%M} UTC"
            if api_key.expiry_date
            else "does not expire"
        )
        # The notes go to stderr: stdout is the key alone.
        self.stderr.write(
            f"{'New client' if made.client_created else 'Client'} {api_key.client.username!r}: "
            f"key {api_key.prefix}… ({api_key.name!r}, {expiry}). Store it now: it is not kept "
            "and cannot be shown again."
        )
        self.stdout.write(made.key)
