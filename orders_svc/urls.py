"""Routes of the orders service."""

from rest_framework.routers import SimpleRouter

from orders_svc.apis import OrderViewSet

router = SimpleRouter()
router.register("orders", OrderViewSet, basename="order")

urlpatterns = router.urls
