"""Admin for users; deletions go through the service so that referenced users are kept."""

from django.contrib import admin

from common.admin import ServiceDeleteMixin
from users_svc import services
from users_svc.models import User


@admin.register(User)
class UserAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    list_display = ["id", "name", "email"]
    search_fields = ["name", "email"]
    ordering = ["id"]
    delete_record = staticmethod(services.user_delete)
