"""The one place that turns every error into a JSON response with a message.

DRF's own handler covers its exceptions; this adds the services' errors and Django's
oversized-body error, so that a client always gets JSON and never an HTML error page.

A table whose ids ran out (``IdsExhausted``) is a 409, not a 503: the state of the table
refuses the create, and no retry will change it; the message says what will.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connections,
)
from django.http import HttpResponse
from rest_framework import status
from rest_framework.exceptions import ErrorDetail, NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import exception_handler

from common.exceptions import IdsExhausted, RecordInvalid, RecordNotFound, RecordReferenced
from common.http.auth import TOKEN_NEEDED
from common.http.json import body_too_large, dumps
from common.ops.health import SERVICE_OF, DatabaseHealth, probe_all


def unavailable_response(exc: Exception, down: list[DatabaseHealth] | None = None) -> Response:
    """A 503 that names the databases that do not answer (each is probed once)."""
    response = Response(unavailable_body(exc, down), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = "5"
    return response


def unavailable_body(exc: Exception, down: list[DatabaseHealth] | None = None) -> dict:
    """What a 503 says: the databases that fail their probe, or else the ones whose connection
    raised during this request (a damaged page deep in a file passes the probe's one-row read,
    and a lock past its timeout is only busy)."""
    if down is None:
        down = _databases_down()
    if down:
        names = " and ".join(SERVICE_OF.get(h.alias, h.alias) for h in down)
        detail = (
            f"The {names} database is unavailable ({down[0].error}). Requests that need it "
            "fail until it is back; the other services keep working. Retry later."
        )
        return {"detail": detail, "code": "unavailable", "unavailable": [h.alias for h in down]}
    failed = [c.alias for c in connections.all(initialized_only=True) if c.errors_occurred]
    error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    names = " and ".join(SERVICE_OF.get(alias, alias) for alias in failed) or "A"
    if "Could not decode to UTF-8" in error:
        detail = (
            f"The {names} database holds text that is not UTF-8 ({error}), written behind the "
            "service's back: requests that read that row fail until it is repaired."
        )
    elif "malformed" in error or "not a database" in error:
        detail = (
            f"The {names} database is damaged ({error}): requests that need it fail until it is "
            "restored from a backup (manage.py check_integrity, PRAGMA integrity_check)."
        )
    else:  # it answered again by now, or it was only busy (a lock held past the timeout)
        what = f"The {names} database" if failed else "A database"
        detail = f"{what} did not answer in time ({error}). Retry later."
    return {"detail": detail, "code": "unavailable", "unavailable": failed}


class DatabaseUnavailableMiddleware:
    """The same 503 for the views outside the API (the admin, its login): a database that is
    gone or damaged is "unavailable, naming it", never a 500 page."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if _database_unavailable(exception):
            body = unavailable_body(exception)
        elif down := _wrong_database(exception):
            body = unavailable_body(exception, down)
        else:
            return None
        return HttpResponse(
            dumps(body), status=503, content_type="application/json", headers={"Retry-After": "5"}
        )


def _databases_down() -> list[DatabaseHealth]:
    return [health for health in probe_all() if not health.ok]


def _database_unavailable(exc: Exception) -> bool:
    """A database that cannot answer, as opposed to a query of ours it refused.

    A lost connection, a missing file or a lock past its timeout is an ``OperationalError``
    or ``InterfaceError``; a SQLite file that is not a database, or is corrupt, raises a plain
    ``DatabaseError`` ("file is not a database", "database disk image is malformed"). Its
    subclasses (``IntegrityError``, ``ProgrammingError``, ``DataError``...) are bugs: a 500.
    """
    return isinstance(exc, OperationalError | InterfaceError) or type(exc) is DatabaseError


def _wrong_database(exc: Exception) -> list[DatabaseHealth]:
    """The databases lacking their own table, when ``exc`` may come from that (else none).

    PostgreSQL reports a missing table as a ``ProgrammingError``, which is a bug of ours unless
    the probe finds that a database is not the one its service needs (another service's, or
    never migrated): then the answer is a 503 naming it, as for a missing SQLite file.
    """
    if not isinstance(exc, ProgrammingError):
        return []
    return _databases_down()


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the service errors above and Django's oversized-body error."""
    if isinstance(exc, RecordInvalid):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RecordNotFound):
        return Response({"detail": str(exc), "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, RecordReferenced):
        return Response(
            {"detail": str(exc), "code": "referenced", "references": exc.references},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IdsExhausted):
        return Response(
            {"detail": str(exc), "code": "ids_exhausted"}, status=status.HTTP_409_CONFLICT
        )
    if _database_unavailable(exc):
        return unavailable_response(exc)
    if down := _wrong_database(exc):
        return unavailable_response(exc, down)
    if isinstance(exc, RequestDataTooBig):
        exc = body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, NotAuthenticated):  # DRF's own message does not say how to get in
        exc.detail = ErrorDetail(TOKEN_NEEDED, code=exc.default_code)
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        code = getattr(response.data.get("detail"), "code", None)
        if code:
            response.data.setdefault("code", code)
    return response
