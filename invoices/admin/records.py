"""Read-only admins: the mirrored customers, the results of bulk actions, the sync runs and the
records a sync could not hold."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from invoices import selectors
from invoices.admin.base import GuardedAdmin
from invoices.admin.filters import YesNoFilter
from invoices.models import ActionBatch, Customer, Provider, SyncProblem, SyncRun
from invoices.services import syncing


class ReadOnlyAdmin(GuardedAdmin):
    """Rows that only sync and the back-office itself write."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("name", "email", "provider", "remote_id", "last_synced_at")
    list_filter = ("provider",)
    search_fields = ("name", "email", "remote_id")


@admin.register(ActionBatch)
class ActionBatchAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "actor", "created_at", "size")
    list_filter = ("kind",)
    change_form_template = "admin/invoices/actionbatch/change_form.html"

    @admin.display(description="invoices")
    def size(self, obj):
        return obj.items.count()

    def get_urls(self):
        return [
            path(
                "<int:pk>/status/",
                self.guarded_view(self.status_view),
                name="invoices_actionbatch_status",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        if batch is None or not self.has_view_permission(request, batch):
            # Django's own page says the batch does not exist, or refuses.
            return super().change_view(request, object_id, form_url, extra_context)
        rows = selectors.batch_rows(batch)
        extra_context = {
            **(extra_context or {}),
            "rows": rows,
            "failures": [row for row in rows if row["css"] == "failed"],
            "batch": batch,
            "progress": selectors.batch_progress(batch),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def status_view(self, request, pk: int):
        """The batch's figures as JSON, for its page to update itself in place; with ``?after=<item
        id>``, also the outcome of the next rows (``rows``) and where to read on (``next_after``)."""
        self.require(self.has_view_permission(request))
        batch = get_object_or_404(ActionBatch, pk=pk)
        status = selectors.batch_progress(batch).as_json()
        after = request.GET.get("after", "")
        if selectors.is_row_id(after):
            rows, next_after = selectors.batch_rows_after(batch, after=int(after))
            status["rows"] = [{key: row[key] for key in ("item", "outcome", "css")} for row in rows]
            status["next_after"] = next_after
        return JsonResponse(status)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "provider",
        "kind",
        "status",
        "created",
        "updated",
        "unchanged",
        "removed",
        "pages",
        "requests",
        "quarantined",
        "duration",
        "error",
    )
    list_filter = ("provider", "kind", "status")
    date_hierarchy = "started_at"
    change_list_template = "admin/invoices/syncrun/change_list.html"

    def has_run_sync_permission(self, request) -> bool:
        return self.has_codename(request, "run_sync")

    @admin.display(description="duration")
    def duration(self, obj: SyncRun) -> str:
        if not obj.finished_at:
            return "running"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f} s"

    def get_urls(self):
        return [
            path("sync-now/", self.guarded_view(self.sync_now_view), name="invoices_syncrun_sync_now"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if self.has_run_sync_permission(request):
            providers = [(p.value, p.label) for p in selectors.configured_providers()]
            extra_context = {**(extra_context or {}), "sync_now_providers": providers}
        return super().changelist_view(request, extra_context)

    def sync_now_view(self, request):
        self.require(self.has_run_sync_permission(request))
        if request.method == "POST":
            provider, mode = request.POST.get("provider", ""), request.POST.get("mode", "")
            try:
                syncing.sync_request(provider=provider, mode=mode)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"A {mode} sync of {Provider(provider).label} is queued; it shows here when a "
                    "worker starts it.",
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(reverse("admin:invoices_syncrun_changelist"))


class OpenProblemFilter(YesNoFilter):
    title = "state"
    parameter_name = "open"
    labels = ("Open", "Resolved")

    def condition(self) -> Q:
        return Q(resolved_at__isnull=True)


@admin.register(SyncProblem)
class SyncProblemAdmin(ReadOnlyAdmin):
    """Records a provider sent that the mirror cannot hold: skipped by every sync until the
    provider sends them in a form it can; the sync that does resolves them."""

    list_display = (
        "remote_id",
        "provider",
        "kind",
        "field",
        "message",
        "seen",
        "last_seen_at",
        "resolved_at",
    )
    list_filter = ("provider", "kind", OpenProblemFilter)
    search_fields = ("remote_id", "field", "value", "message")
    date_hierarchy = "last_seen_at"
    fields = (
        "provider",
        "kind",
        "remote_id",
        "field",
        "value",
        "message",
        "payload",
        "first_seen_at",
        "last_seen_at",
        "seen",
        "resolved_at",
    )
    readonly_fields = ("payload",)

    @admin.display(description="payload as sent")
    def payload(self, obj: SyncProblem) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.raw, indent=2, sort_keys=True, ensure_ascii=False))
