"""The admin's view of ingest jobs and idempotency keys: read-only, every client's.

The API shows each client only its own jobs; an operator sees them all here, whose client
submitted each (``owner``, the client account's id), its state and progress. The batch and the
result are not shown (they can be hundreds of megabytes): their sizes are.
"""

from django.contrib import admin

from ingest.models import IdempotencyKey, IngestJob


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(IngestJob)
class IngestJobAdmin(_ReadOnly):
    list_display = ("id", "owner", "state", "processed", "total", "created_at", "finished_at")
    list_filter = ("state", "dry_run", "atomic")
    search_fields = ("id", "owner")
    exclude = ("result",)
    readonly_fields = ("result_size",)

    @admin.display(description="result (bytes)")
    def result_size(self, job: IngestJob) -> int | None:
        return None if job.result is None else len(job.result)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("result")


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(_ReadOnly):
    list_display = ("key", "owner", "status", "created_at", "expires_at")
    search_fields = ("key", "owner")
    exclude = ("response",)
