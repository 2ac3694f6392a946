"""A CRUD viewset whose writes go through a service's functions instead of ``serializer.save``.

The view stays thin (HackSoft style): it parses and validates input with the serializer, then
hands clean values to the service, which owns transactions and cross-service checks. Around
that, what HTTP clients of a store expect:

* lists are filtered (the service's FilterSet), sorted by one indexed field
  (``common.http.ordering``) and paged by number or by cursor (``common.http.pagination``);
  every query parameter they do not take is a 400 (``common.http.query``);
* a create answers **201** with ``Location`` (the new record's URL);
* single-record answers carry an ``ETag``, ``If-None-Match`` gives a 304 and ``If-Match`` on a
  write is checked by the service under its lock, a 412 when the record changed meanwhile
  (``common.http.conditional``).
"""

from typing import Any, ClassVar

from django.db import models
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse

from common.data.preconditions import Precondition
from common.data.validation import MAX_BIGINT
from common.exceptions import PreconditionFailed
from common.http.conditional import (
    IF_MATCH,
    IF_NONE_MATCH,
    etag_of,
    if_match,
    not_modified,
    refuse_conditions_on_create,
    write_precondition,
)
from common.http.ordering import StrictOrderingFilter
from common.http.pagination import CURSOR, PAGE, PAGE_SIZE, KeysetPagination
from common.http.query import strict_query


class ServiceViewSet(viewsets.ModelViewSet):
    """List, retrieve, create, update, partial update and delete, backed by service functions.

    Subclasses set ``create_record(**values)``, ``update_record(record, *, precondition,
    **values)`` and ``delete_record(record, *, precondition)`` (usually ``staticmethod``s of
    the service's ``services`` module), and ``ordering_fields``: every field a list may be
    sorted by, each with an index on ``(field, id)``.
    """

    # Ids are 64-bit, up to 19 digits (2**63-1); anything longer or larger is a 404
    # (get_object), never an overflow in the database.
    lookup_value_regex = r"[0-9]{1,19}"
    ordering: ClassVar[list[str]] = ["id"]
    ordering_fields: ClassVar[list[str]] = ["id"]
    filter_backends: ClassVar[list[type]] = [DjangoFilterBackend, StrictOrderingFilter]
    pagination_class = KeysetPagination

    @staticmethod
    def create_record(**values: Any) -> models.Model:
        raise NotImplementedError

    @staticmethod
    def update_record(
        record: models.Model, *, precondition: Precondition | None, **values: Any
    ) -> models.Model:
        raise NotImplementedError

    @staticmethod
    def delete_record(record: models.Model, *, precondition: Precondition | None) -> None:
        raise NotImplementedError

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        strict_query(request, self.query_parameters())

    def query_parameters(self) -> tuple[str, ...]:
        """What this action takes in its query string (any other is a 400, see
        ``common.http.query``): a list its filters, ``ordering`` and the page or cursor; every
        action DRF's ``format``."""
        if self.action != "list":
            return ("format",)
        filters = tuple(self.filterset_class.base_filters) if self.filterset_class else ()
        return (*filters, "ordering", PAGE, PAGE_SIZE, CURSOR, "format")

    def get_object(self) -> models.Model:
        if int(self.kwargs[self.lookup_url_kwarg or self.lookup_field]) > MAX_BIGINT:
            model = self.get_queryset().model  # Django's own words for a missing record
            raise Http404(f"No {model._meta.object_name} matches the given query.")
        return super().get_object()

    def retrieve(self, request, *args, **kwargs) -> Response:
        record = self.get_object()
        data = self.get_serializer(record).data
        etag = etag_of(data)
        if (precondition := if_match(request, self._noun(), self._etag)) is not None:
            precondition(record)
        if not_modified(request, etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})

    def create(self, request, *args, **kwargs) -> Response:
        refuse_conditions_on_create(request)
        response = super().create(request, *args, **kwargs)
        response["ETag"] = etag_of(response.data)
        return response

    def get_success_headers(self, data) -> dict[str, str]:
        return {
            "Location": reverse(f"{self.basename}-detail", args=[data["id"]], request=self.request)
        }

    def update(self, request, *args, **kwargs) -> Response:
        response = super().update(request, *args, **kwargs)
        response["ETag"] = etag_of(response.data)
        return response

    def perform_create(self, serializer) -> None:
        serializer.instance = self.create_record(**serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = self.update_record(
            serializer.instance, precondition=self._precondition(), **serializer.validated_data
        )

    def perform_destroy(self, instance: models.Model) -> None:
        self.delete_record(instance, precondition=self._precondition())

    def _precondition(self) -> Precondition | None:
        """What ``If-Match`` and ``If-None-Match`` ask of the stored record (the service checks
        it under its lock)."""
        return write_precondition(self.request, self._noun(), self._etag)

    def _noun(self) -> str:
        return self.get_queryset().model._meta.verbose_name

    def _etag(self, record: models.Model) -> str:
        return etag_of(self.get_serializer(record).data)

    def perform_content_negotiation(self, request, force=False):
        """An unknown ``?format=`` is a 400 naming the formats (DRF answers it with a 404, as if
        the URL did not exist); a CSV or NDJSON client is pointed at the export."""
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            formats = ", ".join(renderer.format for renderer in self.get_renderers())
            wanted = request.query_params.get("format", "")[:40]
            message = f"Must be one of {formats}, not {wanted!r}."
            if self.action == "list":
                message += f" The whole table as CSV or NDJSON: {request.path}export/."
            raise ValidationError({"format": [message]}) from None

    def handle_exception(self, exc) -> Response:
        response = super().handle_exception(exc)
        if isinstance(exc, PreconditionFailed):
            response["ETag"] = exc.etag
        return response


def _header(name: str, description: str, *, response: bool | list[int] = False):
    return OpenApiParameter(
        name, str, OpenApiParameter.HEADER, description=description, response=response
    )


_IF_MATCH = _header(
    IF_MATCH,
    "The `ETag` of the version you read: the request goes ahead only if the record is still "
    "that version (else a 412 and nothing is written). Checked under the write's lock, so two "
    "clients cannot both overwrite one version.",
)
_IF_NONE_MATCH = _header(
    IF_NONE_MATCH, "The `ETag` you hold: a 304 without a body if the record is still that version."
)


def _etag_header(codes: list[int]):
    return _header(
        "ETag",
        "The record's version: send it back in `If-None-Match` (a 304 while unchanged) or "
        "`If-Match` (a 412 if it changed).",
        response=codes,
    )


def crud_docs(
    noun: str,
    serializer: type,
    *,
    list_description: str,
    invalid_example: str,
    referenced_by: str | None = None,
    write_description: str | None = None,
):
    """OpenAPI summaries and responses for a :class:`ServiceViewSet` over ``noun`` records.

    ``invalid_example`` is a typical 400 body; ``referenced_by`` names what may block a delete
    (documented as a 409).
    """
    article = "an" if noun[0] in "aeio" else "a"  # "a user": its u sounds like "you"
    invalid = OpenApiResponse(
        description=f"Invalid input, with a message per field, e.g. `{invalid_example}`."
    )
    changed = OpenApiResponse(
        description=f"`If-Match` names another version than the stored one: the {noun} changed "
        "since it was read. Nothing was written; the response's `ETag` is the current version."
    )
    no_id_left = OpenApiResponse(
        description=f"No id is left for a new {noun}: the largest id a {noun} can have has been "
        "used (ids are never given twice). Nothing was written; `POST /ingest/` takes "
        f"{noun}s with ids of their own. The `code` is `ids_exhausted`."
    )
    delete_responses = {204: OpenApiResponse(description="Deleted."), 412: changed}
    if referenced_by:
        delete_responses[409] = OpenApiResponse(
            description=f"{referenced_by.capitalize()} still reference the {noun}; "
            "the message says how many. Nothing is deleted."
        )
    location = _header(
        "Location", f"The URL of the new {noun}.", response=[status.HTTP_201_CREATED]
    )
    return extend_schema_view(
        list=extend_schema(summary=f"List {noun}s", description=list_description),
        retrieve=extend_schema(
            summary=f"Get {article} {noun}",
            parameters=[_IF_NONE_MATCH, _IF_MATCH, _etag_header([200, 304])],
            responses={
                200: serializer,
                304: OpenApiResponse(description="Not modified (`If-None-Match`)."),
                412: changed,
            },
        ),
        create=extend_schema(
            summary=f"Create {article} {noun}",
            description=write_description,
            parameters=[location, _etag_header([201])],
            responses={201: serializer, 400: invalid, 409: no_id_left},
        ),
        update=extend_schema(
            summary=f"Replace {article} {noun}",
            description=write_description,
            parameters=[_IF_MATCH, _etag_header([200])],
            responses={200: serializer, 400: invalid, 412: changed},
        ),
        partial_update=extend_schema(
            summary=f"Change some fields of {article} {noun}",
            description=write_description,
            parameters=[_IF_MATCH, _etag_header([200])],
            responses={200: serializer, 400: invalid, 412: changed},
        ),
        destroy=extend_schema(
            summary=f"Delete {article} {noun}",
            parameters=[_IF_MATCH],
            responses=delete_responses,
        ),
    )
