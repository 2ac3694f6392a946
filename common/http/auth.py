"""Who may do what: reads are open, writes need an API key, and both are rate-limited.

Keys are hashed (``common.models.ApiKey``, kept in the default database: only a prefix and a
SHA-512 of the key are stored); a client sends ``Authorization: Token <key>`` (``Bearer
<key>`` works too), and is then ``request.user``: its client account, whichever of its keys it
sent. ``python manage.py create_api_token NAME`` makes a key (shown once),
``revoke_api_token`` revokes keys. Setting ``API_READS_REQUIRE_TOKEN`` closes reads as well.

Throttles, all in Django's cache (set ``CACHE_URL`` to a Redis URL when several processes serve
the API, so that they share counts), a 429 with ``Retry-After`` past their rate:

* writes and batches, per client (``API_WRITE_RATE``, ``API_INGEST_RATE``);
* reads without a key, per address (``API_ANON_READ_RATE``);
* failed authentications, per address (``API_AUTH_FAILURE_RATE``): past the rate, every request
  from the address that carries a key is refused before its key is looked at, a valid key
  too, since a guess that works must not be told apart from one that does not;
* admin logins, per address, by django-axes (``ADMIN_LOGIN_FAILURE_LIMIT``).

The address is the connection's (:func:`client_address`): ``X-Forwarded-For`` is believed only
as far as ``NUM_PROXIES`` proxies of our own wrote it, so that a client cannot escape a limit by
sending a new one with every request.
"""

import hashlib
import re
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions, permissions, throttling

from common.models import ApiKey

#: A key of the plaintext scheme used before (DRF's ``authtoken``), migrated as it was.
LEGACY_KEY = re.compile(r"[0-9a-f]{40}")
#: ``last_used_at`` is written at most this often per key: a write per request would cost more
#: than the lookup it follows.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def legacy_prefix(key: str) -> str:
    """The stored prefix of a migrated 40-hex token: 8 characters derived from a hash of it
    (not the token's own first characters, which would give away part of the secret). The
    migration ``common.0002`` derives it the same way."""
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    prefix = ""
    for _ in range(8):
        number, digit = divmod(number, len(_ALPHABET))
        prefix += _ALPHABET[digit]
    return prefix


def client_address(request: HttpRequest) -> str:
    """The address a request is counted against: the connection's, or the one the nearest of
    ``NUM_PROXIES`` proxies of ours saw (DRF's rule; django-axes is given the same)."""
    return throttling.BaseThrottle().get_ident(request) or ""


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """A hashed API key sent as ``Token <key>`` or ``Bearer <key>``; ``request.user`` is the
    key's client, ``request.auth`` the :class:`common.models.ApiKey`."""

    keywords = (b"token", b"bearer")

    def authenticate_header(self, request) -> str:
        return "Token"  # and so a 401, not a 403, for a missing or bad key

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in self.keywords:
            return None
        failures = AuthFailureThrottle()
        failures.refuse_if_over(request)
        try:
            return self._authenticate(header)
        except exceptions.AuthenticationFailed:
            failures.record(request)
            raise

    def _authenticate(self, header: list[bytes]):
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: send 'Token <key>' (one key, no spaces)."
            )
        try:
            key = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        prefix, dot, _ = key.partition(".")
        if not dot:
            prefix = legacy_prefix(key) if LEGACY_KEY.fullmatch(key) else ""
        # The prefix finds the row; the hash of the whole key, compared in constant time, is
        # what proves it.
        api_key = _key_with_prefix(prefix)
        if api_key is None or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if api_key.revoked:
            raise exceptions.AuthenticationFailed(
                f"This API key ({api_key.prefix}…) was revoked; ask an operator for a new one."
            )
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed(
                f"This API key ({api_key.prefix}…) expired at "
                f"{api_key.expiry_date.isoformat(timespec='seconds')}; ask an operator for a "
                "new one."
            )
        if not api_key.client.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        _note_use(api_key)
        return api_key.client, api_key


#: How to get a key and send it, as the docs pages say it.
API_KEY_HELP = (
    "An API key. An operator makes one with `manage.py create_api_token NAME` (after "
    "`make run`: `.venv/bin/python manage.py create_api_token NAME`); it is printed once, and "
    "`revoke_api_token NAME` revokes it. Paste the key alone here; requests then carry "
    "`Authorization: Bearer <key>` (`Token <key>` works too)."
)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the schema (``/api/docs/``) describes :class:`ApiTokenAuthentication`."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema) -> dict:
        # A bearer scheme, so that Swagger UI's Authorize dialog takes the key alone (as an
        # apiKey scheme it wanted "Token <key>" typed whole) and sends "Bearer <key>".
        return {
            **build_bearer_security_scheme_object(
                header_name="Authorization", token_prefix="Bearer"
            ),
            "description": API_KEY_HELP,
        }


def _key_with_prefix(prefix: str):
    if not prefix:
        return None
    try:
        return ApiKey.objects.select_related("client").get(prefix=prefix)
    except ApiKey.DoesNotExist:
        return None


def _note_use(api_key) -> None:
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional, so that of the processes that see the same stale time only one writes.
    type(api_key).objects.filter(pk=api_key.pk, last_used_at=api_key.last_used_at).update(
        last_used_at=now
    )
    api_key.last_used_at = now


#: What a client without a token is told (common.http.exception_handler puts it in the 401).
TOKEN_NEEDED = (
    "This needs an API token: send the header 'Authorization: Token <key>'. "
    "An operator creates one with: manage.py create_api_token NAME"
)


class WritesNeedToken(permissions.BasePermission):
    """Anyone may read (unless API_READS_REQUIRE_TOKEN); writing needs an authenticated token."""

    message = TOKEN_NEEDED

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS and not settings.API_READS_REQUIRE_TOKEN:
            return True
        return bool(request.user and request.user.is_authenticated)


class JobsBelongToTheirClient(WritesNeedToken):
    """For resources that belong to the client that made them (ingest jobs): as
    :class:`WritesNeedToken`, and a list needs a key too (an anonymous list would always be
    empty; a 401 says why). The view's queryset keeps each client to its own rows, so that one
    it does not own is a 404."""

    def has_permission(self, request, view) -> bool:
        if getattr(view, "action", None) == "list" and not request.user.is_authenticated:
            # Not NotAuthenticated, whose message the exception handler replaces.
            raise exceptions.AuthenticationFailed(
                "Jobs belong to the client that created them: send its API key "
                "('Authorization: Token <key>') to list them.",
                code="not_authenticated",
            )
        return super().has_permission(request, view)


def owner_of(request) -> str:
    """What the rows a client owns (its ingest jobs, its idempotency keys) record: its
    account's primary key, or "" for an anonymous request."""
    user = getattr(request, "user", None)
    return str(user.pk) if user is not None and user.is_authenticated else ""


class _ConfiguredRateThrottle(throttling.UserRateThrottle):
    """A throttle whose rate is read from settings on every request (so that it can be
    changed without restarting, and in tests); an empty rate means no limit. It counts per
    client account, or per address (:func:`client_address`) for an anonymous request."""

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope) or None

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class WriteRateThrottle(_ConfiguredRateThrottle):
    """Writes (POST, PUT, PATCH, DELETE) per client: ``API_WRITE_RATE``."""

    scope = "writes"

    def allow_request(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class IngestRateThrottle(_ConfiguredRateThrottle):
    """Batches sent to ``POST /ingest/`` per client: ``API_INGEST_RATE``."""

    scope = "ingest"


class AnonReadRateThrottle(_ConfiguredRateThrottle):
    """Reads without a key, per address: ``API_ANON_READ_RATE``."""

    scope = "anon_reads"

    def allow_request(self, request, view) -> bool:
        if request.method not in permissions.SAFE_METHODS or request.user.is_authenticated:
            return True
        return super().allow_request(request, view)


class AuthFailureThrottle(_ConfiguredRateThrottle):
    """Failed authentications per address: ``API_AUTH_FAILURE_RATE``.

    Unlike the other throttles it counts only failures (:meth:`record`), and it is asked
    before a key is checked (:meth:`refuse_if_over`), by the authentication itself: DRF's
    throttles run after authentication, which a bad key never gets past.
    """

    scope = "auth_failures"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def _load(self, request) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return False
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return True

    def refuse_if_over(self, request) -> None:
        """Raise a 429 if the address has used up its failures."""
        if self._load(request) and len(self.history) >= self.num_requests:
            raise exceptions.Throttled(
                wait=self.wait() or self.duration,
                detail="Too many failed authentication attempts from this address; "
                "requests carrying a key are refused until the wait is over.",
            )

    def record(self, request) -> None:
        if self._load(request):
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)


def login_locked_out(request, response=None, credentials=None) -> HttpResponse:
    """What django-axes answers a locked-out admin login (``AXES_LOCKOUT_CALLABLE``): a 429
    with ``Retry-After``, the whole cool-off (each attempt during it starts it again)."""
    from axes.helpers import get_cool_off

    seconds = max(1, int(get_cool_off(request).total_seconds()))
    return HttpResponse(
        f"Too many failed logins from this address: try again in {seconds} seconds.",
        status=429,
        content_type="text/plain; charset=utf-8",
        headers={"Retry-After": str(seconds)},
    )
