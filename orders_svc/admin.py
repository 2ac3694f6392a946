"""Admin for orders: each row shows its user's and product's names, fetched from the users and
products services once per page (one query per service, never one per row); forms are checked
by ``check_order`` and the references by those services, like the API's."""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList

from common.ops.admin import ServiceAdmin
from orders_svc import rules, services
from orders_svc.models import Order
from products_svc.selectors import existing_product_ids, product_names
from users_svc.selectors import existing_user_ids, user_names


class OrderChangeList(ChangeList):
    """Looks up the names of the page's users and products in their own databases."""

    def get_results(self, request) -> None:
        super().get_results(request)
        orders = list(self.result_list)
        users = user_names({order.user_id for order in orders})
        products = product_names({order.product_id for order in orders})
        for order in orders:
            order.user_name = users.get(order.user_id)
            order.product_name = products.get(order.product_id)
        self.result_list = orders


class QuantityFilter(admin.SimpleListFilter):
    title = "quantity"
    parameter_name = "quantity_range"
    RANGES = {"1": (1, 1), "2-5": (2, 5), "6-": (6, None)}

    def lookups(self, request, model_admin):
        return [("1", "1"), ("2-5", "2 to 5"), ("6-", "6 and more")]

    def queryset(self, request, queryset):
        if self.value() not in self.RANGES:
            return queryset
        low, high = self.RANGES[self.value()]
        queryset = queryset.filter(quantity__gte=low)
        return queryset if high is None else queryset.filter(quantity__lte=high)


@admin.register(Order)
class OrderAdmin(ServiceAdmin):
    list_display = ["id", "user", "product", "quantity"]
    list_filter = [QuantityFilter]
    search_fields = ["id"]  # searched by id, user id or product id (see get_search_results)
    search_help_text = "An order id, a user id or a product id."
    ordering = ["id"]
    rule = staticmethod(rules.check_order)
    rule_fields = ("user_id", "product_id", "quantity")
    create_record = staticmethod(services.order_create)
    update_record = staticmethod(services.order_update)
    delete_record = staticmethod(services.order_delete)

    def get_changelist(self, request, **kwargs):
        return OrderChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if not term.isdigit():
            return queryset.none(), False
        number = int(term)
        return queryset.filter(id=number) | queryset.filter(user_id=number) | queryset.filter(
            product_id=number
        ), False

    def extra_checks(self, values):
        user_id, product_id = values["user_id"], values["product_id"]
        return rules.check_references(
            user_id, product_id, existing_user_ids([user_id]), existing_product_ids([product_id])
        )

    @admin.display(description="user")
    def user(self, order: Order) -> str:
        name = getattr(order, "user_name", None)
        return f"{name} (#{order.user_id})" if name else f"#{order.user_id}: missing"

    @admin.display(description="product")
    def product(self, order: Order) -> str:
        name = getattr(order, "product_name", None)
        return f"{name} (#{order.product_id})" if name else f"#{order.product_id}: missing"
