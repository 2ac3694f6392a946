"""A CRUD viewset whose writes go through a service's functions instead of ``serializer.save``.

The view stays thin (HackSoft style): it parses and validates input with the serializer, then
hands clean values to the service, which owns transactions and cross-service checks.
"""

from typing import Any, ClassVar

from django.db import models
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets

from common.http.query import strict_query


class ServiceViewSet(viewsets.ModelViewSet):
    """List, retrieve, create, update, partial update and delete, backed by service functions.

    Subclasses set ``create_record(**values)``, ``update_record(record, **values)`` and
    ``delete_record(record)`` (usually ``staticmethod``s of the service's ``services`` module).
    """

    # Ids are 64-bit; anything longer than 18 digits is a 404, never an overflow in the database.
    lookup_value_regex = r"[0-9]{1,18}"
    ordering: ClassVar[list[str]] = ["id"]

    @staticmethod
    def create_record(**values: Any) -> models.Model:
        raise NotImplementedError

    @staticmethod
    def update_record(record: models.Model, **values: Any) -> models.Model:
        raise NotImplementedError

    @staticmethod
    def delete_record(record: models.Model) -> None:
        raise NotImplementedError

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        strict_query(request, self.query_parameters())

    def query_parameters(self) -> tuple[str, ...]:
        """What this action takes in its query string (any other is a 400, see
        ``common.http.query``): a list its filters, ``ordering`` and the page; every action
        DRF's ``format``."""
        if self.action != "list":
            return ("format",)
        filters = tuple(self.filterset_class.base_filters) if self.filterset_class else ()
        return (*filters, "ordering", "page", "page_size", "format")

    def perform_create(self, serializer) -> None:
        serializer.instance = self.create_record(**serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = self.update_record(serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: models.Model) -> None:
        self.delete_record(instance)


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
    delete_responses = {204: OpenApiResponse(description="Deleted.")}
    if referenced_by:
        delete_responses[409] = OpenApiResponse(
            description=f"{referenced_by.capitalize()} still reference the {noun}; "
            "the message says how many. Nothing is deleted."
        )
    return extend_schema_view(
        list=extend_schema(summary=f"List {noun}s", description=list_description),
        retrieve=extend_schema(summary=f"Get {article} {noun}"),
        create=extend_schema(
            summary=f"Create {article} {noun}",
            description=write_description,
            responses={201: serializer, 400: invalid},
        ),
        update=extend_schema(
            summary=f"Replace {article} {noun}",
            description=write_description,
            responses={200: serializer, 400: invalid},
        ),
        partial_update=extend_schema(
            summary=f"Change some fields of {article} {noun}",
            description=write_description,
            responses={200: serializer, 400: invalid},
        ),
        destroy=extend_schema(summary=f"Delete {article} {noun}", responses=delete_responses),
    )
