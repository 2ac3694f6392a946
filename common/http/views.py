"""The API root, the health check and JSON error pages for URLs that no view handles."""

import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from common.ops.health import SERVICE_OF, probe_all

#: name shown at the API root -> URL name
ROOT_LINKS = {
    "users": "user-list",
    "products": "product-list",
    "orders": "order-list",
    "users_export": "user-export",
    "products_export": "product-export",
    "orders_export": "order-export",
    "ingest": "ingest",
    "docs": "swagger-ui",
    "redoc": "redoc",
    "schema": "schema",
    "health": "healthz",
    "metrics": "metrics",
}


class ApiRootView(APIView):
    """Where to go from here: the resources and the interactive documentation."""

    @extend_schema(exclude=True)
    def get(self, request, format=None):
        links = {name: reverse(url_name, request=request) for name, url_name in ROOT_LINKS.items()}
        return Response(
            {
                "service": "Distributed store: users, products and orders, a database each.",
                "documentation": links["docs"],
                **links,
            }
        )


def not_found(request, exception=None) -> JsonResponse:
    """404 for any URL outside the API, as JSON like every other error."""
    return JsonResponse(
        {"detail": f"No endpoint at {request.path}. See / for the list.", "code": "not_found"},
        status=404,
    )


def bad_request(request, exception=None) -> JsonResponse:
    """400 for requests refused before any view (e.g. a Host header not in ALLOWED_HOSTS)."""
    return JsonResponse(
        {
            "detail": "Bad request (for example, a Host header not in ALLOWED_HOSTS).",
            "code": "bad_request",
        },
        status=400,
    )


def permission_denied(request, exception=None) -> JsonResponse:
    """403 outside the API views (e.g. a failed CSRF check), as JSON."""
    return JsonResponse({"detail": "Permission denied.", "code": "permission_denied"}, status=403)


def server_error(request) -> JsonResponse:
    """500 as JSON; the details are in the server log, never in the response."""
    return JsonResponse(
        {"detail": "Internal server error; it has been logged.", "code": "server_error"},
        status=500,
    )


@never_cache
def healthz(request) -> JsonResponse:
    """Is every database reachable (and the broker, when one is configured)? 200 or 503.

    Each check reports ``ok``, its latency in milliseconds and, when it failed, why. Open to
    anyone, like a load balancer's probe; it shows no data, only reachability.
    """
    checks: dict[str, dict] = {}
    for health in probe_all():
        checks[health.alias] = {
            "kind": "database",
            "service": SERVICE_OF.get(health.alias, health.alias),
            "ok": health.ok,
            "latency_ms": round(health.seconds * 1000, 2),
            **({"error": health.error} if health.error else {}),
        }
    if settings.CELERY_BROKER_URL:
        checks["broker"] = {"kind": "broker", **_probe_broker(settings.CELERY_BROKER_URL)}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def _probe_broker(url: str) -> dict:
    """Connect to the Celery broker once, with a short timeout."""
    from kombu import Connection

    started = time.perf_counter()
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure to connect is the answer, not an error of ours
        error = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        return {"ok": False, "latency_ms": _ms_since(started), "error": error}
    return {"ok": True, "latency_ms": _ms_since(started)}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
