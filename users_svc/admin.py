"""Admin for users: checked by ``check_user`` and written through the users service, so the
admin keeps the same rules as the API (and cannot delete a user that orders reference)."""

from django.contrib import admin

from common.ops.admin import ServiceAdmin
from users_svc import rules, selectors, services
from users_svc.models import User


class EmailDomainFilter(admin.SimpleListFilter):
    title = "email domain"
    parameter_name = "domain"

    def lookups(self, request, model_admin):
        return [(domain, f"{domain} ({users})") for domain, users in selectors.top_email_domains()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(email__iendswith="@" + self.value())
        return queryset


@admin.register(User)
class UserAdmin(ServiceAdmin):
    list_display = ["id", "name", "email"]
    search_fields = ["name", "email"]
    list_filter = [EmailDomainFilter]
    ordering = ["id"]
    rule = staticmethod(rules.check_user)
    rule_fields = ("name", "email")
    create_record = staticmethod(services.user_create)
    update_record = staticmethod(services.user_update)
    delete_record = staticmethod(services.user_delete)
