"""The admin of API keys: who holds which key, when it was last used, and revoking it.

Built on ``djangorestframework-api-key``'s admin: a key added here is shown once, in the
message after saving (only its hash is stored), and a revoked key cannot be brought back. The
library's own ``APIKey`` model is unused (ours, ``common.models.ApiKey``, belongs to a client
account), so it is taken out of the admin.
"""

from django.contrib import admin, messages
from django.utils import timezone
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from common.models import ApiKey

if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = (
        "prefix",
        "name",
        "client",
        "created",
        "last_used_at",
        "expiry_date",
        "_has_expired",
        "revoked",
    )
    list_filter = ("revoked", "created")
    list_select_related = ("client",)
    search_fields = ("name", "prefix", "client__username")
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        fields = (*super().get_readonly_fields(request, obj), "last_used_at")
        return fields if obj is None else (*fields, "client")

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked=False).update(revoked=True)
        self.message_user(
            request,
            f"Revoked {count} API key(s) at {timezone.now():%Y-%m-%d %H:%M} UTC.",
            messages.SUCCESS,
        )
