"""Admin for orders: read-only here, because an order written from a plain admin form would skip
the cross-service reference check. Orders are created and changed through the API."""

from django.contrib import admin

from orders_svc.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "user_id", "product_id", "quantity"]
    ordering = ["id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
