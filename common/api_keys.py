"""Making and revoking API keys (``common.models.ApiKey``), for the management commands.

A client is a Django user without a usable password (it cannot log in to the admin); it may
hold any number of keys, so that a key can be replaced without downtime: make a new one, move
the client over, revoke the old one.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from common.models import ApiKey
from config.db_router import DEFAULT_DATABASE


class ApiKeyError(ValueError):
    """The request cannot be carried out; the message says why."""


@dataclass(frozen=True)
class NewKey:
    api_key: ApiKey
    key: str  # the only time the key exists in clear
    client_created: bool


#: A hundred years: past that, leave --expires out (and a date past year 9999 cannot be stored).
MAX_EXPIRY_DAYS = 36_500


def api_key_create(
    *, client_name: str, key_name: str = "", expires_in_days: float | None = None
) -> NewKey:
    """A new key for the client ``client_name`` (made if it does not exist yet)."""
    client_name = client_name.strip()
    if not client_name or len(client_name) > 150:
        raise ApiKeyError("NAME must be 1 to 150 characters.")
    key_name = (key_name or client_name).strip()[:50]
    if expires_in_days is not None and not 0 < expires_in_days <= MAX_EXPIRY_DAYS:
        raise ApiKeyError(
            f"--expires must be a number of days greater than 0 and at most {MAX_EXPIRY_DAYS} "
            "(leave it out for a key that does not expire)."
        )
    with transaction.atomic(using=DEFAULT_DATABASE):
        client, created = get_user_model().objects.get_or_create(username=client_name)
        if created:
            client.set_unusable_password()  # a client, not a person: no password login
            client.save(update_fields=["password"])
        expiry = (
            None if expires_in_days is None else timezone.now() + timedelta(days=expires_in_days)
        )
        api_key, key = ApiKey.objects.create_key(client=client, name=key_name, expiry_date=expiry)
    return NewKey(api_key=api_key, key=key, client_created=created)


def api_key_revoke(*, prefix_or_name: str) -> list[ApiKey]:
    """Revoke the key with this prefix, or else every key of the client with this name; the
    keys revoked now (empty if they all were already). Raises :class:`ApiKeyError` if neither
    a key nor a client is called so."""
    wanted = prefix_or_name.strip()
    # A whole key may be given too: its prefix is what is before the dot.
    keys = ApiKey.objects.select_related("client").filter(prefix=wanted.split(".")[0])
    if not keys.exists():
        keys = ApiKey.objects.select_related("client").filter(client__username=wanted)
        if not keys.exists():
            raise ApiKeyError(f"No API key has the prefix {wanted!r} and no client that name.")
    revoked = list(keys.filter(revoked=False))
    ApiKey.objects.filter(pk__in=[k.pk for k in revoked]).update(revoked=True)
    return revoked
