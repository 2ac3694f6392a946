"""Structured logs: one JSON line per request, with a request id that the response carries too.

A request id comes from the client's ``X-Request-ID`` header when it is a sane token (so a
request can be followed through a proxy or a caller's own logs), else it is made here. It is
kept in a context variable for the length of the request, so every line logged while handling
it (the ingest summary, errors) carries it.
"""

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

request_log = logging.getLogger("store.request")


class RequestLogMiddleware:
    """Give each request an id (``X-Request-ID`` in and out) and log one line when it ends."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        rid = offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        token = request_id.set(rid)
        request.request_id = rid
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            self.log(request, response, rid, time.perf_counter() - started)
        finally:
            request_id.reset(token)
        return response

    @staticmethod
    def log(request, response, rid: str, seconds: float) -> None:
        # Imported here: the logging config loads this module before Django (and DRF) are set.
        from common.http.auth import client_address

        fields = {
            "event": "request",
            "request_id": rid,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
            # Behind nginx (NUM_PROXIES=1) the connection is nginx's: the client is the address
            # it saw, as the throttles count it.
            "client": client_address(request),
        }
        if query := request.META.get("QUERY_STRING"):
            fields["query"] = query[:500]
        if response.status_code >= 500:
            level = logging.ERROR
        elif response.status_code >= 400:
            level = logging.WARNING
        else:
            level = logging.INFO
        request_log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={"fields": fields},
        )


def install_request_id_on_records() -> None:
    """Stamp every log record with the request id of the thread that created it, so that it is
    right wherever and whenever the record is formatted. Called once, at start-up."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "stamps_request_id", False):
        return

    def make_stamped_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    make_stamped_record.stamps_request_id = True
    logging.setLogRecordFactory(make_stamped_record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the record's
    ``fields`` (pass them as ``extra={"fields": {...}}``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            line["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def quiet_batch_logs(verbosity: int) -> None:
    """In a management command, leave the per-batch log line (``store.ingest``) to ``-v 2``:
    the command prints its own summary for the person at the terminal, and a JSON line per
    chunk on stderr would interleave with it. Servers keep logging every batch."""
    if verbosity < 2:
        logging.getLogger("store.ingest").setLevel(logging.WARNING)
