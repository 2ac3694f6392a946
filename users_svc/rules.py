"""The rules a user must satisfy, written once for every way a user gets in.

A user needs a name that is not blank (whitespace alone is blank) and a valid email address.
The REST endpoints (through the serializer), the bulk ingest and the seed commands all call
:func:`check_user`.
"""

from typing import Any

from common.data.validation import (
    Invalid,
    clean_email,
    clean_text,
    field_errors,
    plain_email,
    plain_text,
)
from users_svc.models import User

NAME_MAX_LENGTH: int = User._meta.get_field("name").max_length
EMAIL_MAX_LENGTH: int = User._meta.get_field("email").max_length

UserValues = tuple[str, str]


def check_user(name: Any, email: Any) -> tuple[UserValues | None, dict[str, list[str]] | None]:
    """``((name, email), None)`` cleaned, or ``(None, {field: [message]})``."""
    fast_name, fast_email = plain_text(name, NAME_MAX_LENGTH), plain_email(email, EMAIL_MAX_LENGTH)
    if fast_name is not None and fast_email is not None:
        return (fast_name, fast_email), None
    clean_name = clean_text(name, NAME_MAX_LENGTH)
    clean_address = clean_email(email, EMAIL_MAX_LENGTH)
    if type(clean_name) is Invalid or type(clean_address) is Invalid:
        return None, field_errors(name=clean_name, email=clean_address)
    return (clean_name, clean_address), None
