"""OpenAPI generation: drf-spectacular's, told who may call what and every way a call can fail.

drf-spectacular derives each operation from its view; two things it cannot see are added here.

**Who may call it.** Reads are open (``common.http.auth.WritesNeedToken``): they get no
security requirement at all, so Swagger UI (``/api/docs/``) shows no padlock on them. An
optional key (``[{"tokenAuth": []}, {}]``, OpenAPI's way of saying "a key or nothing") was
drawn by Swagger UI as a *closed* padlock, since the empty alternative is always satisfied,
while the writes, not authorized yet, showed an open one: the opposite of the rules. Writes,
and reads that do need a key (``API_READS_REQUIRE_TOKEN``, the jobs of a client), keep their
requirement: a padlock that opens a dialog where the key goes (``ApiTokenScheme`` says how to
get one).

**How it can fail.** Every operation lists the errors the service's plumbing gives it, whatever
the view declares: a 400 for an unknown or repeated query parameter, a 401 where a key is
needed (and for a bad key, wherever one is sent), a 404 for an id that is not there, a 413 and
a 415 for a body too large or of a type the endpoint does not read, a 429 past a throttle and a
503 when a service's database is down. A view's own description of a code (``crud_docs``,
``POST /ingest/``) wins.
"""

from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions

from common.http.auth import WritesNeedToken
from common.http.serializers import ErrorSerializer

_BAD_REQUEST = (
    "Bad input: an unknown or repeated query parameter, a bad filter value, malformed JSON or "
    "a body that breaks a rule. The body names each parameter or field with its messages "
    '(`{"nam":["Unknown query parameter. This endpoint takes: ..."]}`), or has `detail` and '
    "`code`."
)
_NEEDS_KEY = (
    "No API key, or one that is wrong, revoked or expired. An operator makes a key with "
    "`manage.py create_api_token NAME`; send it as "
    "`Authorization: Token <key>` (or `Bearer <key>`)."
)
_WRONG_KEY = (
    "A key was sent and it is wrong, revoked or expired (this needs none: send no "
    "`Authorization` header, or a valid key)."
)
_NOT_FOUND = "No record with this id."
_TOO_LARGE = "The body is larger than the limit (`API_MAX_BODY_BYTES`, 1 MiB by default)."
_MEDIA_TYPE = "The body is not of a type this endpoint reads (JSON, or a form), or is compressed."
_THROTTLED = (
    "Too many requests: writes per client (`API_WRITE_RATE`), reads without a key per address "
    "(`API_ANON_READ_RATE`), or failed authentications per address. `Retry-After` says how many "
    "seconds to wait."
)
_UNAVAILABLE = (
    "A database this request needs is unavailable; `unavailable` names the services. The "
    "others keep working. Retry later."
)
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}


class AutoSchema(openapi.AutoSchema):
    def get_auth(self) -> list[dict[str, Any]]:
        if self._is_open_read():
            return []  # no requirement, no padlock (see the module docstring)
        return super().get_auth()

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, description, body in self._plumbing_errors():
            if code not in responses:
                response = OpenApiResponse(response=body, description=description)
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        if "429" in responses:
            responses["429"].setdefault("headers", _RETRY_AFTER)
        return responses

    def _is_open_read(self) -> bool:
        # Exactly WritesNeedToken: its subclasses (the jobs of a client) need a key to read.
        return (
            self.method in permissions.SAFE_METHODS
            and not settings.API_READS_REQUIRE_TOKEN
            and any(type(p) is WritesNeedToken for p in self.view.get_permissions())
        )

    def _plumbing_errors(self) -> list[tuple[str, str, Any]]:
        """(code, description, body) of the errors this operation gets from the plumbing."""
        errors: list[tuple[str, str, Any]] = [
            ("400", _BAD_REQUEST, None),
            ("401", _WRONG_KEY if self._is_open_read() else _NEEDS_KEY, ErrorSerializer),
        ]
        if "{" in self.path:
            errors.append(("404", _NOT_FOUND, ErrorSerializer))
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors.append(("413", _TOO_LARGE, ErrorSerializer))
            errors.append(("415", _MEDIA_TYPE, ErrorSerializer))
        errors.append(("429", _THROTTLED, ErrorSerializer))
        errors.append(("503", _UNAVAILABLE, ErrorSerializer))
        return errors
