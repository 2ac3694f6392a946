"""Routes of the products service: the export first, so that the router's ``products/<pk>/`` never
sees it."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from products_svc.apis import ProductExportView, ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")

urlpatterns = [
    path("products/export/", ProductExportView.as_view(), name="product-export"),
    *router.urls,
]
