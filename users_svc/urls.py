"""Routes of the users service: the export first, so that the router's ``users/<pk>/`` never
sees it."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from users_svc.apis import UserExportView, UserViewSet

router = SimpleRouter()
router.register("users", UserViewSet, basename="user")

urlpatterns = [
    path("users/export/", UserExportView.as_view(), name="user-export"),
    *router.urls,
]
