"""The invoice admin: its list and page's configuration, the permission each act needs, and the
actions. The columns are in ``columns``, the extra pages in ``pages`` and ``corrections``."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.urls import path

from invoices import formatting, selectors
from invoices.admin.base import GuardedAdmin
from invoices.admin.columns import InvoiceColumns
from invoices.admin.corrections import CorrectionPages
from invoices.admin.export import invoices_csv_response
from invoices.admin.filters import (
    CustomerFilter,
    DateRangeFilter,
    DiscardedFilter,
    OutstandingFilter,
    OverdueFilter,
    PaidFilter,
    RemovedFilter,
    filter_ordering,
)
from invoices.admin.listing import InvoiceChangeList, SummarizingPaginator
from invoices.admin.pages import InvoicePages
from invoices.models import MIRRORED_FIELDS, Invoice, InvoiceEvent, Provider
from invoices.services import intake, refresh, retry


class EventInline(admin.TabularInline):
    model = InvoiceEvent
    extra = 0
    can_delete = False
    fields = ("at", "what", "actor", "message")
    readonly_fields = fields
    verbose_name_plural = "history"
    template = "admin/invoices/invoice/history_inline.html"

    @admin.display(description="kind")
    def what(self, event: InvoiceEvent) -> str:
        """A repeated event is one row: "Will retry (12 times, last 7 Dec 2026 21:04)"."""
        if event.count > 1 and event.last_at:
            return (
                f"{event.get_kind_display()} ({event.count} times, last {formatting.moment(event.last_at)})"
            )
        return event.get_kind_display()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


BOOKKEEPING_READONLY = (
    "sync_state",
    "pending_action",
    "requested_paid_at",
    "requested_paid_on",
    "send_notification",
    "outcome_unknown",
    "attempts",
    "next_attempt_at",
    "last_error",
    "last_synced_at",
    "last_seen_at",
    "created_by",
)
#: Bookkeeping only one provider uses: MijnKlantportaal takes a payment moment and a notification
#: flag, Qonto a payment date.
PROVIDER_ONLY = {
    "requested_paid_at": Provider.MKP,
    "send_notification": Provider.MKP,
    "requested_paid_on": Provider.QONTO,
}
#: Bookkeeping that says something only once it is set (a request, a failure, an author).
SHOWN_WHEN_SET = (
    "pending_action",
    "requested_paid_at",
    "requested_paid_on",
    "send_notification",
    "outcome_unknown",
    "next_attempt_at",
    "last_error",
    "created_by",
)


def bookkeeping_fields(invoice: Invoice) -> tuple[str, ...]:
    """The bookkeeping shown on an invoice's page: its provider's own fields, and the ones set."""
    return tuple(
        name
        for name in BOOKKEEPING_READONLY
        if PROVIDER_ONLY.get(name, invoice.provider) == invoice.provider
        and (name not in SHOWN_WHEN_SET or getattr(invoice, Invoice._meta.get_field(name).attname))
    )


@admin.register(Invoice)
class InvoiceAdmin(InvoiceColumns, InvoicePages, CorrectionPages, GuardedAdmin):
    # The key columns fit 1366 px without scrolling: the provider is a badge beside the number,
    # the issue date a tooltip on the due date, long names are cut with an ellipsis.
    list_display = (
        "number_display",
        "customer_display",
        "amount_display",
        "due_display",
        "paid_display",
        "status_display",
        "sync_display",
        "links",
    )
    list_filter = (
        "provider",
        "status",
        PaidFilter,
        OverdueFilter,
        OutstandingFilter,
        "sync_state",
        RemovedFilter,
        DiscardedFilter,
        ("due_date", DateRangeFilter),
        ("paid_at", DateRangeFilter),
        CustomerFilter,
    )
    # Searched by selectors.invoice_search (number prefix, customer name, provider id), which the
    # indexes serve; the fields here only make the search box show and say what it searches.
    search_fields = ("number", "customer_name", "customer__name", "customer__email", "remote_id")
    search_help_text = "Number (its beginning), customer name or e-mail, or the provider's id."
    list_select_related = ("customer",)
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = (
        "provider",
        "remote_id",
        "customer",
        "removed_at",
        "pdf_link",
        "amount_display",
        "vat_display",
        "paid_display",
        "provider_link",
        *MIRRORED_FIELDS,
        *BOOKKEEPING_READONLY,
    )
    fieldsets = (
        (
            "Invoice",
            {
                "fields": (
                    "provider",
                    "number",
                    "customer",
                    "customer_name",
                    "issue_date",
                    "due_date",
                    "amount_display",
                    "vat_display",
                    "status",
                    "paid_display",
                )
            },
        ),
        (
            "At the provider",
            {
                "fields": (
                    "remote_id",
                    "remote_created_at",
                    "remote_updated_at",
                    "provider_link",
                    "removed_at",
                    "pdf_link",
                )
            },
        ),
        ("Sync", {"fields": BOOKKEEPING_READONLY}),
        ("Provider data", {"classes": ["collapse"], "fields": ("raw",)}),
    )
    inlines = [EventInline]
    actions = [
        "mark_paid_action",
        "create_at_provider_action",
        "refresh_action",
        "retry_action",
        "export_csv_action",
    ]
    change_form_template = "admin/invoices/invoice/change_form.html"
    change_list_template = "admin/invoices/invoice/change_list.html"

    # Who may do what ----------------------------------------------------------------------------
    # An invoice changes only through the acts below, never through its form (a save of the whole
    # row could undo what a sync wrote meanwhile), and it is never deleted here.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return self.has_create_at_provider_permission(request)

    def has_create_at_provider_permission(self, request) -> bool:
        return self.has_codename(request, "create_at_provider")

    def has_mark_paid_permission(self, request) -> bool:
        return self.has_codename(request, "mark_paid")

    def has_refresh_from_provider_permission(self, request) -> bool:
        return self.has_codename(request, "refresh_from_provider")

    def has_retry_push_permission(self, request) -> bool:
        return self.has_codename(request, "retry_push")

    def has_export_invoices_permission(self, request) -> bool:
        return self.has_codename(request, "export_invoices")

    @property
    def media(self):
        # The customer filter's autocomplete: the admin's own select2 (as AutocompleteSelect loads it).
        return super().media + forms.Media(
            js=(
                "admin/js/vendor/jquery/jquery.js",
                "admin/js/vendor/select2/select2.full.js",
                "admin/js/jquery.init.js",
                "admin/js/autocomplete.js",
            ),
            css={"screen": ("admin/css/vendor/select2/select2.css", "admin/css/autocomplete.css")},
        )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [
            (name, {**options, "fields": bookkeeping_fields(obj)} if name == "Sync" else options)
            for name, options in fieldsets
        ]

    def get_changelist(self, request, **kwargs):
        return InvoiceChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if queryset.model is not Invoice:  # the history page pages its log entries
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        return SummarizingPaginator(queryset, per_page, orphans, allow_empty_first_page)

    def get_ordering(self, request):
        return filter_ordering(request.GET) or super().get_ordering(request)

    def get_search_results(self, request, queryset, search_term):
        return selectors.invoice_search(queryset, search_term), False

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "warnings": selectors.admin_warnings(),
            "exact_up_to": selectors.LIST_EXACT_UP_TO,
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        def route(suffix: str, view, name: str):
            return path(f"<int:pk>/{suffix}/", self.guarded_view(view), name=f"invoices_invoice_{name}")

        return [
            route("mark-paid", self.mark_paid_view, "mark_paid"),
            route("refresh", self.refresh_view, "refresh"),
            route("send", self.send_view, "send"),
            route("correct", self.correct_view, "correct"),
            route("discard", self.discard_view, "discard"),
            route("fetch-pdf", self.fetch_pdf_view, "fetch_pdf"),
            route("pdf", self.pdf_view, "pdf"),
            *super().get_urls(),
        ]

    # Actions ---------------------------------------------------------------------------------
    @admin.action(description="Mark selected invoices as paid…", permissions=["mark_paid"])
    def mark_paid_action(self, request, queryset: QuerySet[Invoice]):
        return self.mark_paid_page(request, queryset)

    @admin.action(description="Create selected at the provider", permissions=["create_at_provider"])
    def create_at_provider_action(self, request, queryset: QuerySet[Invoice]):
        report = intake.invoices_bulk_request_create(
            invoices=list(queryset.order_by("pk")), actor=request.user
        )
        return self.report_batch(request, report, "created at the provider")

    @admin.action(description="Refresh selected from the provider", permissions=["refresh_from_provider"])
    def refresh_action(self, request, queryset: QuerySet[Invoice]):
        report = refresh.invoices_bulk_refresh(invoices=list(queryset.order_by("pk")), actor=request.user)
        return self.report_batch(request, report, "refreshed from the provider")

    @admin.action(description="Retry failed changes", permissions=["retry_push"])
    def retry_action(self, request, queryset: QuerySet[Invoice]):
        report = retry.invoices_bulk_retry(invoices=list(queryset.order_by("pk")), actor=request.user)
        return self.report_batch(request, report, "sent to the provider again")

    @admin.action(description="Export selected as CSV", permissions=["export_invoices"])
    def export_csv_action(self, request, queryset: QuerySet[Invoice]):
        return invoices_csv_response(queryset)
