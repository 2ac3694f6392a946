"""The order resource as the API shows it; input is checked by ``rules.check_order``.

Whether the user and the product exist is checked by the service, inside the transaction that
writes the order.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from common.data.validation import MAX_INT
from common.http.serializers import RuleSerializer
from orders_svc import rules


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "An order",
            value={"id": 1, "user_id": 1, "product_id": 1, "quantity": 2},
            response_only=True,
        ),
        OpenApiExample(
            "New order",
            value={"user_id": 1, "product_id": 1, "quantity": 2},
            request_only=True,
        ),
    ]
)
class OrderSerializer(RuleSerializer):
    id = serializers.IntegerField(
        read_only=True,
        help_text="Assigned by the orders service; an update may send it back unchanged.",
    )
    user_id = serializers.IntegerField(
        min_value=1, help_text="Id of an existing user (checked in the users database)."
    )
    product_id = serializers.IntegerField(
        min_value=1, help_text="Id of an existing product (checked in the products database)."
    )
    quantity = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, help_text="How many; greater than 0."
    )

    resource_name = "order"
    resource_article = "an"
    rule_fields = ("user_id", "product_id", "quantity")
    rule = staticmethod(rules.check_order)
