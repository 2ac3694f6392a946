"""The API root and JSON error pages for URLs that no view handles."""

from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

#: name shown at the API root -> URL name
ROOT_LINKS = {
    "users": "user-list",
    "products": "product-list",
    "orders": "order-list",
    "ingest": "ingest",
    "docs": "swagger-ui",
    "redoc": "redoc",
    "schema": "schema",
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


def server_error(request) -> JsonResponse:
    """500 as JSON; the details are in the server log, never in the response."""
    return JsonResponse(
        {"detail": "Internal server error; it has been logged.", "code": "server_error"},
        status=500,
    )
