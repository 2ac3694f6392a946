"""Serializers whose input is checked by a service's rules: one source of truth per rule.

DRF fields still describe each resource (for the output and the OpenAPI schema), but the input
goes through the same ``rules`` function that the bulk ingest and the management commands use,
so the single-record endpoints cannot drift from them.

A body holds the resource's fields and nothing else: a key the resource does not know is a 400
naming it, never silently dropped (a typo such as ``"emial"`` would otherwise lose the value,
and padding would cost memory for nothing). The one exception is the read-only ``id``, so that a
client may send back what it read: on an update it is accepted when it is the record's own id
and ignored, and refused when it is another; on a create, where the service assigns the id, any
value but ``null`` is refused (``POST /ingest/`` takes records with chosen ids).
"""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from rest_framework import serializers

from common.data.validation import JSON_TYPE_NAMES, UNSET, as_sent, unknown_field_errors

#: A service's rules function: raw field values in, (clean values, None) or (None, errors) out.
Rule = Callable[..., tuple[tuple[Any, ...] | None, dict[str, list[str]] | None]]

# Keys a browser's HTML form adds to what it posts (the browsable API's forms).
_FORM_KEYS = frozenset({"csrfmiddlewaretoken"})


def not_an_object(data: Any) -> dict[str, list[str]]:
    kind = JSON_TYPE_NAMES.get(type(data), type(data).__name__)
    return {"non_field_errors": [f"Expected a JSON object, got {kind}."]}


class RuleSerializer(serializers.Serializer):
    """Checks input with ``rule`` over ``rule_fields`` (in the rule's argument order).

    A partial update (PATCH) fills the missing fields from the stored record first, so the rule
    always judges the record as it would be saved.
    """

    rule_fields: ClassVar[tuple[str, ...]]
    #: The resource in messages: "user", "product", "order", and its article ("a", "an").
    resource_name: ClassVar[str]
    resource_article: ClassVar[str] = "a"

    @staticmethod
    def rule(*values: Any) -> tuple[tuple[Any, ...] | None, dict[str, list[str]] | None]:
        raise NotImplementedError("set rule = staticmethod(<service>.rules.check_<resource>)")

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:  # a body of JSON null: DRF would say "No data provided"
            raise serializers.ValidationError(not_an_object(data))
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(not_an_object(data))
        fill_from_instance = self.partial and self.instance is not None
        values = [
            data[name]
            if name in data
            else as_sent(getattr(self.instance, name))
            if fill_from_instance
            else UNSET
            for name in self.rule_fields
        ]
        clean, errors = self.rule(*values)
        extra = self._extra_field_errors(data)
        if errors or extra:
            raise serializers.ValidationError({**(errors or {}), **extra})
        return dict(zip(self.rule_fields, clean, strict=True))

    def _extra_field_errors(self, data: Mapping) -> dict[str, list[str]]:
        """A message for each key that is not one of ``rule_fields`` and may not be sent."""
        errors: dict[str, list[str]] = {}
        unknown = []
        for key in data:
            if key in self.rule_fields or key in _FORM_KEYS:
                continue
            if key == "id":
                message = self._id_error(data[key])
                if message:
                    errors[key] = [message]
                continue
            unknown.append(key)
        noun = f"{self.resource_article} {self.resource_name}"
        return {**errors, **unknown_field_errors(unknown, noun, self.rule_fields)}

    def _id_error(self, value: Any) -> str | None:
        """Why an ``id`` sent in the body cannot be taken, or None to ignore it."""
        if self.instance is None:
            if value is None:
                return None
            return (
                f"The id of a new {self.resource_name} is assigned by the service; leave it out "
                "(POST /ingest/ takes records with chosen ids)."
            )
        own = self.instance.pk
        if type(value) is int and value == own:
            return None
        return (
            f"This is {self.resource_name} {own}: the id cannot be changed "
            f"(send {own}, or leave it out)."
        )


class ErrorSerializer(serializers.Serializer):
    """What every error response of the API carries (for the OpenAPI schema: errors are
    written by ``common.http.exception_handler``)."""

    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="The same, for a program (e.g. `unprocessable`).")
