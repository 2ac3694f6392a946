"""``python manage.py create_api_token NAME``: print an API token for a client called NAME.

The token lets its bearer write (``Authorization: Token <key>``). Running the command again for
the same NAME prints the same token; ``--rotate`` replaces it (the old one stops working).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print the API token of client NAME, creating the client and its token if needed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who the token is for, e.g. 'warehouse-import'")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token")

    def handle(self, *args, name: str, rotate: bool, **options) -> None:
        name = name.strip()
        if not name or len(name) > 150:
            raise CommandError("NAME must be 1 to 150 characters.")
        account, created = get_user_model().objects.get_or_create(username=name)
        if created:
            account.set_unusable_password()  # a client, not a person: no password login
            account.save(update_fields=["password"])
        if rotate:
            Token.objects.filter(user=account).delete()
        token, _ = Token.objects.get_or_create(user=account)
        self.stdout.write(token.key)
