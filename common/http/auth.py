"""Who may do what: reads are open, writes need an API token, and both are rate-limited.

Tokens are DRF's (``rest_framework.authtoken``, kept in the default database); a client sends
``Authorization: Token <key>`` (``Bearer <key>`` works too). ``python manage.py
create_api_token NAME`` makes one. Setting ``API_READS_REQUIRE_TOKEN`` closes reads as well.

Throttles count per token (per address for anonymous reads) in Django's cache: set
``CACHE_URL`` to a Redis URL when several processes serve the API, so that they share counts.
"""

from django.conf import settings
from rest_framework import authentication, exceptions, permissions, throttling


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, also accepting the ``Bearer`` keyword."""

    keywords = (b"token", b"bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: send 'Token <key>' (one key, no spaces)."
            )
        try:
            key = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return self.authenticate_credentials(key)


#: What a client without a token is told (common.http.exception_handler puts it in the 401).
TOKEN_NEEDED = (
    "This needs an API token: send the header 'Authorization: Token <key>'. "
    "An operator creates one with: python manage.py create_api_token NAME"
)


class WritesNeedToken(permissions.BasePermission):
    """Anyone may read (unless API_READS_REQUIRE_TOKEN); writing needs an authenticated token."""

    message = TOKEN_NEEDED

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS and not settings.API_READS_REQUIRE_TOKEN:
            return True
        return bool(request.user and request.user.is_authenticated)


class _ConfiguredRateThrottle(throttling.UserRateThrottle):
    """A per-token throttle whose rate is read from settings on every request (so that it
    can be changed without restarting, and in tests); an empty rate means no limit."""

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope) or None

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class WriteRateThrottle(_ConfiguredRateThrottle):
    """Writes (POST, PUT, PATCH, DELETE) per token: ``API_WRITE_RATE``."""

    scope = "writes"

    def allow_request(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class IngestRateThrottle(_ConfiguredRateThrottle):
    """Batches sent to ``POST /ingest/`` per token: ``API_INGEST_RATE``."""

    scope = "ingest"
