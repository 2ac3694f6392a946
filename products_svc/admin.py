"""Admin for products; deletions go through the service so that referenced products are kept."""

from django.contrib import admin

from common.admin import ServiceDeleteMixin
from products_svc import services
from products_svc.models import Product


@admin.register(Product)
class ProductAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    list_display = ["id", "name", "price"]
    search_fields = ["name"]
    ordering = ["id"]
    delete_record = staticmethod(services.product_delete)
