"""Admin helpers: the admin writes through the services, like the API does.

A plain ModelAdmin would save whatever its model form accepts, skipping the services' rules
(a blank name, an order for a user that does not exist) and their deletion guards.
:class:`ServiceAdmin` checks each form with the service's rule (the same function the API and
the ingest use) and saves and deletes through the service's functions.
"""

from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from common.exceptions import IdsExhausted, RecordInvalid, RecordNotFound, RecordReferenced


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose forms are checked by ``rule`` and whose writes go through services.

    Set ``rule`` (``check_user``…), ``rule_fields`` (its arguments, in order), and the service
    functions ``create_record(**values)``, ``update_record(record, **values)`` and
    ``delete_record(record)``. ``extra_checks(values)`` may return more field errors (e.g.
    references to other services).
    """

    rule: ClassVar[Callable[..., tuple[Any, dict[str, list[str]] | None]]]
    rule_fields: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def create_record(**values):
        raise NotImplementedError("set create_record = staticmethod(services.<resource>_create)")

    @staticmethod
    def update_record(record, **values):
        raise NotImplementedError("set update_record = staticmethod(services.<resource>_update)")

    @staticmethod
    def delete_record(record) -> None:
        raise NotImplementedError("set delete_record = staticmethod(services.<resource>_delete)")

    def extra_checks(self, values: dict[str, Any]) -> dict[str, list[str]] | None:
        return None

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        model_admin = self
        assert model_admin.rule_fields, f"{type(self).__name__} needs rule and rule_fields"

        class RuleCheckedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                fields = model_admin.rule_fields
                if any(field in self.errors for field in fields):
                    return cleaned  # the form's own message (e.g. "required") is enough
                # The rule gets what was typed, as the API's rule gets what was sent.
                typed = [self.data.get(self.add_prefix(field)) for field in fields]
                values, errors = type(model_admin).rule(*typed)
                if errors is None:
                    self.rule_values = dict(zip(fields, values, strict=True))
                    errors = model_admin.extra_checks(self.rule_values)
                for field, field_messages in (errors or {}).items():
                    for message in field_messages:
                        self.add_error(field if field in self.fields else None, message)
                return cleaned

        return RuleCheckedForm

    def save_model(self, request, obj, form, change) -> None:
        try:
            if change:
                self.update_record(obj, **form.rule_values)
            else:
                obj.pk = self.create_record(**form.rule_values).pk
        except RecordInvalid as exc:  # changed between the form's check and the save
            request.service_refused = True
            reasons = "; ".join(
                f"{field}: {' '.join(texts)}" for field, texts in exc.errors.items()
            )
            self.message_user(request, f"Not saved: {reasons}", messages.ERROR)
        except IdsExhausted as exc:  # the table's largest id is used: the admin cannot add one
            request.service_refused = True
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)

    # A save the service refused wrote nothing: no "Added"/"Changed" entry in the history.
    def log_addition(self, request, obj, message):
        if not getattr(request, "service_refused", False):
            return super().log_addition(request, obj, message)
        return None

    def log_change(self, request, obj, message):
        if not getattr(request, "service_refused", False):
            return super().log_change(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "service_refused", False):
            return HttpResponseRedirect(request.path)  # the form again, with the message
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "service_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def delete_model(self, request, obj) -> None:
        try:
            self.delete_record(obj)
        except RecordReferenced as exc:
            self.message_user(request, str(exc), messages.ERROR)
        except RecordNotFound as exc:  # another request deleted it since the page was read
            self.message_user(request, str(exc), messages.WARNING)

    def delete_queryset(self, request, queryset) -> None:
        for record in queryset:
            self.delete_model(request, record)
