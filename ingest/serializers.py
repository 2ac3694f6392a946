"""The shapes of ``POST /ingest/`` for the OpenAPI schema (the view does not use them to parse:
records are checked one by one by the services' rules, so one bad record never fails the batch).
"""

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from common.http.serializers import ErrorSerializer
from orders_svc.serializers import OrderSerializer
from products_svc.serializers import ProductSerializer
from users_svc.serializers import UserSerializer

_ID_HELP = (
    "Optional for an insert: without it the service assigns one; with it, a record whose id "
    "already exists (or repeats in the batch) is skipped as a duplicate. Required for upsert, "
    "update and delete: the record to replace, change or delete."
)
_ACTIONS = ["insert", "upsert", "update", "delete"]
_ACTION_HELP = (
    "What to do with the record (default: the request's `?action=`, else `insert`): `insert` a "
    "new record; `upsert`: insert, or replace the whole record with this id; `update`: change "
    "only the fields given (the id must exist; the merged record is checked by the same "
    "rules); `delete`: delete the record with this id (other fields are ignored). A user or "
    "product is not deleted while an order points at it."
)


def _action_field():
    return serializers.ChoiceField(choices=_ACTIONS, required=False, help_text=_ACTION_HELP)


class IngestUserSerializer(UserSerializer):
    id = serializers.IntegerField(required=False, min_value=1, help_text=_ID_HELP)
    action = _action_field()


class IngestProductSerializer(ProductSerializer):
    id = serializers.IntegerField(required=False, min_value=1, help_text=_ID_HELP)
    action = _action_field()


class IngestOrderSerializer(OrderSerializer):
    id = serializers.IntegerField(required=False, min_value=1, help_text=_ID_HELP)
    action = _action_field()


class IngestRequestSerializer(serializers.Serializer):
    users = IngestUserSerializer(many=True, required=False)
    products = IngestProductSerializer(many=True, required=False)
    orders = IngestOrderSerializer(
        many=True,
        required=False,
        help_text="Checked after users and products are written: an order may point at a user "
        "or product inserted earlier in the same batch.",
    )


class SkippedGroupSerializer(serializers.Serializer):
    """Skipped records that share their reasons: one group per distinct reasons, in order of
    each group's first index, so that a response lists each skipped record once by its index
    and stays within a small multiple of its request."""

    reasons = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field, as the single-record endpoints give them; the same for "
        "every record of the group.",
    )
    indexes = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Positions of the group's records in their list, ascending.",
    )
    ids = serializers.ListField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        help_text="The records' ids, parallel to `indexes` (null for a record without one); "
        "given only when at least one record of the group had an id.",
    )
    lines = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="The records' lines in an NDJSON or CSV body, parallel to `indexes` (not "
        "given for JSON bodies).",
    )
    action = serializers.CharField(
        required=False,
        help_text="The records' action, in a batch with other actions than insert (records "
        "are grouped by action too); not given for a group of inserts.",
    )


class AtomicWriteFailedSerializer(ErrorSerializer):
    """An atomic batch a database failed while committing (a 503): nothing, or what is listed,
    is still stored, and that is removed automatically."""

    left_behind = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Ids still stored per type (`users`, `products`), removed automatically as "
        "soon as the database lets the service; empty when nothing was kept.",
    )
    not_restored = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Ids per type of rows the batch replaced, updated or deleted whose earlier "
        "state is not put back yet; put back automatically like the others are removed.",
    )


class ResourceResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    valid = serializers.IntegerField(help_text="Passed every check (dry run: would be written).")
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Updated, or replaced by an upsert.")
    deleted = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Records skipped (the sum of the groups' sizes).")
    inserted_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ids of the inserted records (upserts of a new id included), in request "
        "order: in a batch of inserts only, the n-th record that was not skipped got the n-th "
        "id.",
    )
    updated_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ids of the updated records and of those an upsert replaced, in request order.",
    )
    deleted_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the deleted records, in request order."
    )
    skipped_groups = SkippedGroupSerializer(
        many=True, help_text="Every skipped record, grouped by its reasons."
    )


class IngestResponseSerializer(serializers.Serializer):
    errors = serializers.BooleanField(help_text="True if any record was skipped.")
    took_ms = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    atomic = serializers.BooleanField()
    committed = serializers.BooleanField(
        help_text="False for a dry run or a rejected atomic batch."
    )
    detail = serializers.CharField(required=False)
    users = ResourceResultSerializer()
    products = ResourceResultSerializer()
    orders = ResourceResultSerializer()


REQUEST_EXAMPLE = OpenApiExample(
    "A small batch",
    request_only=True,
    value={
        "users": [
            {"id": 1, "name": "Alice", "email": "alice@example.com"},
            {"id": 10, "name": "", "email": "jane@example.com"},
            {"name": "", "email": "joe@example.com"},
        ],
        "products": [
            {"id": 1, "name": "Laptop", "price": 1000.0},
            {"id": 10, "name": "Earbuds", "price": -50.0},
        ],
        "orders": [
            {"id": 1, "user_id": 1, "product_id": 1, "quantity": 2},
            {"id": 10, "user_id": 10, "product_id": 11, "quantity": 2},
        ],
    },
)


def _actions_section(inserted_ids, updated_ids, deleted_ids, skipped_groups=()):
    skipped = sum(len(group["indexes"]) for group in skipped_groups)
    done = len(inserted_ids) + len(updated_ids) + len(deleted_ids)
    return {
        "received": done + skipped,
        "valid": done,
        "inserted": len(inserted_ids),
        "updated": len(updated_ids),
        "deleted": len(deleted_ids),
        "skipped": skipped,
        "inserted_ids": inserted_ids,
        "updated_ids": updated_ids,
        "deleted_ids": deleted_ids,
        "skipped_groups": list(skipped_groups),
    }


def _section(inserted_ids, skipped_groups):
    return _actions_section(inserted_ids, [], [], skipped_groups)


RESPONSE_EXAMPLE = OpenApiExample(
    "Its result",
    response_only=True,
    status_codes=["200"],
    value={
        "errors": True,
        "took_ms": 4,
        "dry_run": False,
        "atomic": False,
        "committed": True,
        "users": _section(
            [1],
            [
                {
                    "reasons": {"name": ["This field may not be blank."]},
                    "indexes": [1, 2],
                    "ids": [10, None],
                }
            ],
        ),
        "products": _section(
            [1],
            [
                {
                    "reasons": {"price": ["Ensure this value is greater than 0."]},
                    "indexes": [1],
                    "ids": [10],
                }
            ],
        ),
        "orders": _section(
            [1],
            [
                {
                    "reasons": {
                        "user_id": ["No user has this id."],
                        "product_id": ["No product has this id."],
                    },
                    "indexes": [1],
                    "ids": [10],
                }
            ],
        ),
    },
)


ACTIONS_REQUEST_EXAMPLE = OpenApiExample(
    "A re-sync: upsert, update and delete",
    request_only=True,
    description="Sent as `POST /ingest/?action=upsert`: records without an `action` upsert. "
    "Order 7 is deleted in phase 1, before user 3's deletion in phase 4: had it been user 3's "
    "last order, user 3 would be deleted too; here another order still points at user 3, so "
    "that deletion is refused. User 12 is created before the order that points at them.",
    value={
        "users": [
            {"id": 1, "name": "Alice Smith", "email": "alice@example.com"},
            {"id": 12, "name": "Zoe", "email": "zoe@example.com"},
            {"id": 2, "email": "bob@new.example.com", "action": "update"},
            {"id": 3, "action": "delete"},
        ],
        "products": [{"id": 4, "price": "899.00", "action": "update"}],
        "orders": [
            {"id": 7, "action": "delete"},
            {"id": 20, "user_id": 12, "product_id": 4, "quantity": 1},
        ],
    },
)


ACTIONS_RESPONSE_EXAMPLE = OpenApiExample(
    "Its result (another order still pointed at user 3)",
    response_only=True,
    status_codes=["200"],
    value={
        "errors": True,
        "took_ms": 6,
        "dry_run": False,
        "atomic": False,
        "committed": True,
        "users": _actions_section(
            [12],
            [1, 2],
            [],
            [
                {
                    "reasons": {
                        "id": [
                            "Not deleted: still referenced by 1 order; delete or change "
                            "those first."
                        ]
                    },
                    "indexes": [3],
                    "ids": [3],
                    "action": "delete",
                }
            ],
        ),
        "products": _actions_section([], [4], []),
        "orders": _actions_section([20], [], [7]),
    },
)
