"""Top-level routes: each service's API, the ingest endpoint, the docs, the admin, and the
operator's /healthz and /metrics."""

from django.contrib import admin
from django.urls import include, path
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from common.http.views import ApiRootView, healthz

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("users_svc.urls")),
    path("", include("products_svc.urls")),
    path("", include("orders_svc.urls")),
    path("", include("ingest.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", ExportToDjangoView, name="metrics"),
]

handler400 = "common.http.views.bad_request"
handler403 = "common.http.views.permission_denied"
handler404 = "common.http.views.not_found"
handler500 = "common.http.views.server_error"
