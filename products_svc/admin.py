"""Admin for products: checked by ``check_product`` and written through the products service,
so the admin keeps the same rules as the API (and cannot delete a referenced product)."""

from decimal import Decimal

from django.contrib import admin

from common.ops.admin import ServiceAdmin
from products_svc import rules, services
from products_svc.models import Product

PRICE_RANGES = {
    "under-10": ("under 10", None, Decimal(10)),
    "10-100": ("10 to 100", Decimal(10), Decimal(100)),
    "100-1000": ("100 to 1,000", Decimal(100), Decimal(1000)),
    "over-1000": ("1,000 and over", Decimal(1000), None),
}


class PriceRangeFilter(admin.SimpleListFilter):
    title = "price"
    parameter_name = "price_range"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in PRICE_RANGES.items()]

    def queryset(self, request, queryset):
        if self.value() not in PRICE_RANGES:
            return queryset
        _, low, high = PRICE_RANGES[self.value()]
        if low is not None:
            queryset = queryset.filter(price__gte=low)
        if high is not None:
            queryset = queryset.filter(price__lt=high)
        return queryset


@admin.register(Product)
class ProductAdmin(ServiceAdmin):
    list_display = ["id", "name", "price"]
    search_fields = ["name"]
    list_filter = [PriceRangeFilter]
    ordering = ["id"]
    rule = staticmethod(rules.check_product)
    rule_fields = ("name", "price")
    create_record = staticmethod(services.product_create)
    update_record = staticmethod(services.product_update)
    delete_record = staticmethod(services.product_delete)
