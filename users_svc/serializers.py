"""The user resource as the API shows it; input is checked by ``rules.check_user``."""

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from common.http.serializers import RuleSerializer
from users_svc import rules


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A user",
            value={"id": 1, "name": "Alice", "email": "alice@example.com"},
            response_only=True,
        ),
        OpenApiExample(
            "New user",
            value={"name": "Alice", "email": "alice@example.com"},
            request_only=True,
        ),
    ]
)
class UserSerializer(RuleSerializer):
    id = serializers.IntegerField(
        read_only=True,
        help_text="Assigned by the users service; an update may send it back unchanged.",
    )
    name = serializers.CharField(
        max_length=rules.NAME_MAX_LENGTH,
        help_text="Not blank (whitespace or other invisible characters alone count as blank), "
        "no control or bidi override characters; stored without outer spaces.",
    )
    email = serializers.EmailField(
        max_length=rules.EMAIL_MAX_LENGTH,
        help_text="A valid email address. Several users may share one.",
    )

    resource_name = "user"
    rule_fields = ("name", "email")
    rule = staticmethod(rules.check_user)
