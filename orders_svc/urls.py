"""Routes of the orders service: the export first, so that the router's ``orders/<pk>/`` never
sees it."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from orders_svc.apis import OrderExportView, OrderViewSet

router = SimpleRouter()
router.register("orders", OrderViewSet, basename="order")

urlpatterns = [
    path("orders/export/", OrderExportView.as_view(), name="order-export"),
    *router.urls,
]
