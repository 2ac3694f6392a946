"""Turn the plaintext tokens of DRF's ``authtoken`` into hashed API keys, then delete them.

Each token becomes a key of the same client whose secret is the token itself, so that a client
keeps working with the token it has; only its hash is kept, and the plaintext row is deleted.
The prefix that finds the key is derived from the token (``common.http.auth.legacy_prefix``,
repeated here because a migration must not change when the code does).

``rest_framework.authtoken`` is no longer installed, so its table is read with plain SQL when
it is there (a database made before the change); a new database has no such table and nothing
to do. The emptied table is left in place (harmless; an operator may drop it). On SQLite the
deleted rows' pages are overwritten (``secure_delete``); on PostgreSQL the old row versions
stay in the table's files until it is vacuumed (``VACUUM FULL authtoken_token``).
"""

import hashlib
from datetime import UTC, datetime

from django.db import migrations, router
from django.utils.dateparse import parse_datetime
from rest_framework_api_key.crypto import KeyGenerator

TOKEN_TABLE = "authtoken_token"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _legacy_prefix(key: str) -> str:
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    prefix = ""
    for _ in range(8):
        number, digit = divmod(number, len(_ALPHABET))
        prefix += _ALPHABET[digit]
    return prefix


def _aware(value) -> datetime | None:
    if isinstance(value, str):  # SQLite's plain cursor gives the text it stored
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def tokens_to_keys(apps, schema_editor) -> None:
    ApiKey = apps.get_model("common", "ApiKey")
    connection = schema_editor.connection
    if not router.allow_migrate_model(connection.alias, ApiKey):
        return
    if TOKEN_TABLE not in connection.introspection.table_names():
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} "
            f"FROM {quote(TOKEN_TABLE)}"
        )
        tokens = cursor.fetchall()
    hasher = KeyGenerator()
    for key, user_id, created in tokens:
        prefix, hashed = _legacy_prefix(key), hasher.hash(key)
        ApiKey.objects.using(connection.alias).create(
            id=f"{prefix}.{hashed}",
            prefix=prefix,
            hashed_key=hashed,
            name="token from before hashed keys",
            client_id=user_id,
        )
        if created is not None:  # keep the token's age (the field sets "now" on create)
            ApiKey.objects.using(connection.alias).filter(prefix=prefix).update(
                created=_aware(created)
            )
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # overwrite the freed pages, not just unlink them
            cursor.execute("PRAGMA secure_delete = ON")
        cursor.execute(f"DELETE FROM {quote(TOKEN_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("common", "0001_api_keys")]

    # Backwards there is nothing to restore: the plaintext is gone (the keys stay valid).
    operations = [migrations.RunPython(tokens_to_keys, migrations.RunPython.noop)]
