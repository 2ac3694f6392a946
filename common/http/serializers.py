"""Serializers whose input is checked by a service's rules: one source of truth per rule.

DRF fields still describe each resource (for the output and the OpenAPI schema), but the input
goes through the same ``rules`` function that the bulk ingest and the management commands use,
so the single-record endpoints cannot drift from them.
"""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from rest_framework import serializers

from common.data.validation import UNSET

#: A service's rules function: raw field values in, (clean values, None) or (None, errors) out.
Rule = Callable[..., tuple[tuple[Any, ...] | None, dict[str, list[str]] | None]]


class RuleSerializer(serializers.Serializer):
    """Checks input with ``rule`` over ``rule_fields`` (in the rule's argument order).

    A partial update (PATCH) fills the missing fields from the stored record first, so the rule
    always judges the record as it would be saved.
    """

    rule_fields: ClassVar[tuple[str, ...]]

    @staticmethod
    def rule(*values: Any) -> tuple[tuple[Any, ...] | None, dict[str, list[str]] | None]:
        raise NotImplementedError("set rule = staticmethod(<service>.rules.check_<resource>)")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        f"Invalid data. Expected a JSON object, but got {type(data).__name__}."
                    ]
                }
            )
        fill_from_instance = self.partial and self.instance is not None
        values = [
            data[name]
            if name in data
            else getattr(self.instance, name)
            if fill_from_instance
            else UNSET
            for name in self.rule_fields
        ]
        clean, errors = self.rule(*values)
        if errors:
            raise serializers.ValidationError(errors)
        return dict(zip(self.rule_fields, clean, strict=True))
