"""Admin helpers: deletions from the admin go through the service, like the API's."""

from django.contrib import messages

from common.exceptions import RecordReferenced


class ServiceDeleteMixin:
    """Delete through ``delete_record`` (a service function) so deletion guards apply."""

    @staticmethod
    def delete_record(record) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj) -> None:
        try:
            self.delete_record(obj)
        except RecordReferenced as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset) -> None:
        for record in queryset:
            self.delete_model(request, record)
