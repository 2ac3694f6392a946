"""Routes of the products service."""

from rest_framework.routers import SimpleRouter

from products_svc.apis import ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")

urlpatterns = router.urls
