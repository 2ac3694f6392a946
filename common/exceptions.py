"""Errors the services raise, in business terms, and the HTTP errors the API adds.

Services raise plain Python exceptions that say what went wrong (:class:`RecordInvalid`,
:class:`RecordReferenced`, :class:`RecordNotFound`, :class:`IdsExhausted`); they know nothing
about HTTP.
``common.http.exception_handler`` maps them to status codes.
"""

from rest_framework import status
from rest_framework.exceptions import APIException

from common.data.validation import MAX_BIGINT

FieldErrors = dict[str, list[str]]


class RecordInvalid(Exception):
    """A record broke a rule; ``errors`` maps each field to its messages (a 400)."""

    def __init__(self, errors: FieldErrors) -> None:
        assert errors, "RecordInvalid needs at least one field error"
        super().__init__(errors)
        self.errors = errors


class RecordNotFound(Exception):
    """The record to change is gone (deleted meanwhile); a 404."""


class RecordReferenced(Exception):
    """A record cannot be deleted because records in other services still point at it (a 409)."""

    def __init__(self, resource: str, record_id: int, references: dict[str, int]) -> None:
        self.resource = resource
        self.record_id = record_id
        self.references = references
        counts = " and ".join(
            f"{count} {kind if count != 1 else kind.removesuffix('s')}"
            for kind, count in references.items()
        )
        super().__init__(
            f"{resource.capitalize()} {record_id} is still referenced by {counts}; "
            f"delete or change those first."
        )


class IdsExhausted(Exception):
    """No id is left for a new record: its table has used the largest id a record can have
    (``common.data.ids``). Not the request's fault, nor a passing one: the table's state
    refuses it (a 409) until the record comes with an id of its own."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        super().__init__(
            f"No id is left for a new {noun}: ids are given above every {noun} id used before, "
            f"and {MAX_BIGINT}, the largest possible {noun} id, has been used. Send the {noun} "
            f"with an id of its own that is not in use, through POST /ingest/ (deleting the "
            f"{noun} with the largest id frees no id: ids are never given twice)."
        )


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request is well-formed but cannot be processed."
    default_code = "unprocessable"


class PreconditionFailed(APIException):
    """``If-Match`` named another version of the record than the stored one: nothing written.

    ``etag`` is the stored version's, sent back in the 412's ``ETag`` header."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record changed since it was read."
    default_code = "precondition_failed"

    def __init__(self, detail: str, *, etag: str) -> None:
        super().__init__(detail)
        self.etag = etag


class ExportsBusy(APIException):
    """This process streams as many exports as it may (``EXPORT_MAX_STREAMS``): a 503 with
    ``Retry-After``, before anything is read."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Too many exports are running; retry later."
    default_code = "exports_busy"

    def __init__(self, detail: str, *, wait: int) -> None:
        super().__init__(detail)
        self.wait = wait  # DRF's handler sends it as Retry-After
