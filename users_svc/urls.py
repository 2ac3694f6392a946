"""Routes of the users service."""

from rest_framework.routers import SimpleRouter

from users_svc.apis import UserViewSet

router = SimpleRouter()
router.register("users", UserViewSet, basename="user")

urlpatterns = router.urls
