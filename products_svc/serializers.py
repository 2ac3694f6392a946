"""The product resource as the API shows it; input is checked by ``rules.check_product``."""

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from common.http.serializers import RuleSerializer
from products_svc import rules


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A product",
            value={"id": 1, "name": "Laptop", "price": "1000.00"},
            response_only=True,
        ),
        OpenApiExample(
            "New product",
            value={"name": "Laptop", "price": "1000.00"},
            request_only=True,
        ),
    ]
)
class ProductSerializer(RuleSerializer):
    id = serializers.IntegerField(
        read_only=True,
        help_text="Assigned by the products service; an update may send it back unchanged.",
    )
    name = serializers.CharField(
        max_length=rules.NAME_MAX_LENGTH,
        help_text="Not blank, no control or bidi override characters; stored without outer spaces.",
    )
    price = serializers.DecimalField(
        max_digits=rules.PRICE_MAX_DIGITS,
        decimal_places=rules.PRICE_DECIMAL_PLACES,
        help_text="Greater than 0, at most 2 decimal places. Sent as a JSON number or string; "
        "returned as a string (money is never a float).",
    )

    resource_name = "product"
    rule_fields = ("name", "price")
    rule = staticmethod(rules.check_product)
