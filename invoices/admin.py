"""The back-office. The admin collects input and calls services; it holds no business rules."""

from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import ngettext

from integrations import errors
from invoices import push, refresh, selectors, services
from invoices.forms import MarkPaidForm, MkpInvoiceForm, QontoUploadForm
from invoices.messages import provider_error_message
from invoices.mirror import MIRRORED_FIELDS
from invoices.models import (
    ActionBatch,
    Customer,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    Provider,
    SyncRun,
    SyncState,
)


# Filters ----------------------------------------------------------------------------------------
class YesNoFilter(admin.SimpleListFilter):
    """A filter on one condition: rows that meet it, or rows that do not."""

    labels = ("Yes", "No")

    def condition(self) -> Q:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return [("yes", self.labels[0]), ("no", self.labels[1])]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(self.condition())
        if self.value() == "no":
            return queryset.exclude(self.condition())
        return queryset


class PaidFilter(YesNoFilter):
    title = "paid"
    parameter_name = "paid"
    labels = ("Paid", "Unpaid")

    def condition(self) -> Q:
        return Q(status=InvoiceStatus.PAID)

    def queryset(self, request, queryset):
        if self.value() == "no":  # canceled invoices are not waiting for money
            return queryset.exclude(status__in=[InvoiceStatus.PAID, InvoiceStatus.CANCELED])
        return super().queryset(request, queryset)


class OverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"
    labels = ("Overdue", "Not overdue")

    def condition(self) -> Q:
        return selectors.overdue_q()


class RemovedFilter(YesNoFilter):
    title = "at provider"
    parameter_name = "removed"
    labels = ("Removed at provider", "Present")

    def condition(self) -> Q:
        return Q(removed_at__isnull=False)


# Customers --------------------------------------------------------------------------------------
@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "provider", "remote_id", "last_synced_at")
    list_filter = ("provider",)
    search_fields = ("name", "email", "remote_id")
    readonly_fields = ("provider", "remote_id", "name", "email", "remote_created_at", "raw", "last_synced_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Invoices ---------------------------------------------------------------------------------------
class EventInline(admin.TabularInline):
    model = InvoiceEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "actor", "message")
    readonly_fields = fields
    verbose_name_plural = "history"

    def has_add_permission(self, request, obj=None):
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


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "number_display",
        "provider",
        "customer_display",
        "amount_display",
        "issue_date",
        "due_date",
        "paid_display",
        "status_display",
        "sync_display",
    )
    list_filter = ("provider", "status", PaidFilter, OverdueFilter, "sync_state", RemovedFilter)
    search_fields = ("number", "customer_name", "customer__name", "customer__email", "remote_id")
    date_hierarchy = "issue_date"
    list_select_related = ("customer",)
    list_per_page = 100
    readonly_fields = (
        "provider",
        "remote_id",
        "customer",
        "removed_at",
        "pdf",
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
                    "amount",
                    "vat_amount",
                    "currency",
                    "status",
                    "paid_at",
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
                    "payment_link",
                    "removed_at",
                    "pdf",
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

    # Columns ---------------------------------------------------------------------------------
    @admin.display(description="number", ordering="number")
    def number_display(self, obj: Invoice) -> str:
        return obj.number or (obj.pdf.name.rsplit("/", 1)[-1] if obj.pdf else f"#{obj.pk}")

    @admin.display(description="customer", ordering="customer__name")
    def customer_display(self, obj: Invoice) -> str:
        return obj.customer.name if obj.customer else obj.customer_name

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Invoice) -> str:
        return "" if obj.amount is None else f"{obj.currency} {obj.amount:,.2f}"

    @admin.display(description="paid", ordering="paid_at")
    def paid_display(self, obj: Invoice):
        # Like the date columns beside it ("18 Nov 2026"), with the time.
        return date_format(timezone.localtime(obj.paid_at), "j M Y H:i") if obj.paid_at else "—"

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Invoice):
        if obj.removed_at:
            return mark_safe('<span class="status-removed">removed at provider</span>')
        if obj.is_overdue:
            return mark_safe('<span class="status-overdue">overdue</span>')
        return obj.get_status_display()

    @admin.display(description="sync", ordering="sync_state")
    def sync_display(self, obj: Invoice):
        label = obj.get_sync_state_display()
        if obj.pending_action and obj.sync_state != SyncState.SYNCED:
            label = f"{obj.get_pending_action_display()}: {label.lower()}"
        css = f"sync-{obj.sync_state}"
        if obj.last_error and obj.sync_state in (SyncState.FAILED, SyncState.PENDING):
            return format_html('<span class="{}" title="{}">{} ⚠</span>', css, obj.last_error, label)
        return format_html('<span class="{}">{}</span>', css, label)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "warnings": selectors.admin_warnings()}
        return super().changelist_view(request, extra_context)

    # Extra pages -----------------------------------------------------------------------------
    def get_urls(self):
        own = [
            path(
                "<int:pk>/mark-paid/",
                self.admin_site.admin_view(self.mark_paid_view),
                name="invoices_invoice_mark_paid",
            ),
            path(
                "<int:pk>/refresh/",
                self.admin_site.admin_view(self.refresh_view),
                name="invoices_invoice_refresh",
            ),
            path("<int:pk>/send/", self.admin_site.admin_view(self.send_view), name="invoices_invoice_send"),
            path(
                "<int:pk>/fetch-pdf/",
                self.admin_site.admin_view(self.fetch_pdf_view),
                name="invoices_invoice_fetch_pdf",
            ),
        ]
        return own + super().get_urls()

    def _back(self, pk: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:invoices_invoice_change", args=[pk]))

    def add_view(self, request: HttpRequest, form_url="", extra_context=None):
        provider = request.GET.get("provider", Provider.MKP)
        if provider not in Provider.values:
            provider = Provider.MKP
        form_class = MkpInvoiceForm if provider == Provider.MKP else QontoUploadForm
        form = form_class(request.POST or None, request.FILES or None)
        results = []
        if request.method == "POST" and form.is_valid():
            draft = "_save_draft" in request.POST
            if provider == Provider.MKP:
                response = self._add_mkp(request, form, draft)
                if response is not None:
                    return response
            else:
                results = self._add_qonto(request, form, draft)
                form = form_class()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Add invoice",
            "form": form,
            "provider": provider,
            "providers": Provider.choices,
            "results": results,
            "has_customers": Customer.objects.filter(provider=Provider.MKP).exists(),
        }
        return TemplateResponse(request, "admin/invoices/invoice/upload.html", context)

    def _add_mkp(self, request, form: MkpInvoiceForm, draft: bool):
        data = form.cleaned_data
        upload = data["pdf"]
        fields = {
            k: data[k]
            for k in ("customer", "number", "issue_date", "due_date", "amount", "send_notification")
        }
        try:
            if draft:
                invoice = services.invoice_create_draft(
                    provider=Provider.MKP,
                    pdf_name=upload.name,
                    pdf_content=upload.read(),
                    actor=request.user,
                    paid_at=data["paid_at"],
                    **fields,
                )
                self.message_user(
                    request, f"Invoice {invoice} saved as a local draft; it is not at MijnKlantportaal yet."
                )
                return self._back(invoice.pk)
            invoice = services.invoice_create_from_pdf(
                provider=Provider.MKP,
                pdf_name=upload.name,
                pdf_content=upload.read(),
                actor=request.user,
                paid_at=data["paid_at"],
                **fields,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return None
        self._report_push(request, push.push_invoices([invoice.pk]), invoice)
        return self._back(invoice.pk)

    def _add_qonto(
        self, request, form: QontoUploadForm, draft: bool
    ) -> list[tuple[str, str, Invoice | None]]:
        created = []
        results = []
        for upload in form.cleaned_data["pdfs"]:
            try:
                invoice = services.invoice_create_draft(
                    provider=Provider.QONTO,
                    pdf_name=upload.name,
                    pdf_content=upload.read(),
                    actor=request.user,
                )
            except ValidationError as exc:
                results.append((upload.name, " ".join(exc.messages), None))
                continue
            created.append(invoice)
        if not draft and created:
            report = services.invoices_bulk_request_create(invoices=created, actor=request.user)
            outcome = push.push_invoices([i.pk for i in report.queued])
        else:
            outcome = push.PushResult()
        for invoice in created:
            invoice.refresh_from_db()
            results.append((invoice.pdf.name.rsplit("/", 1)[-1], _describe(invoice, outcome), invoice))
        return results

    def _report_push(self, request, outcome: push.PushResult, invoice: Invoice) -> None:
        invoice.refresh_from_db()
        text = _describe(invoice, outcome)
        level = (
            messages.ERROR
            if invoice.pk in outcome.failed
            else (messages.SUCCESS if invoice.pk in outcome.done else messages.WARNING)
        )
        self.message_user(request, f"{invoice}: {text}", level)

    def mark_paid_view(self, request, pk: int):
        invoice = get_object_or_404(Invoice, pk=pk)
        return self._mark_paid_page(request, Invoice.objects.filter(pk=invoice.pk), single=invoice)

    def refresh_view(self, request, pk: int):
        if request.method != "POST":
            return self._back(pk)
        self._refresh(request, [pk])
        return self._back(pk)

    def send_view(self, request, pk: int):
        invoice = get_object_or_404(Invoice, pk=pk)
        if request.method == "POST":
            try:
                if invoice.sync_state == SyncState.FAILED:
                    services.invoice_retry(invoice=invoice, actor=request.user)
                else:
                    services.invoice_request_create(invoice=invoice, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return self._back(pk)
            self._report_push(request, push.push_invoices([invoice.pk]), invoice)
        return self._back(pk)

    def fetch_pdf_view(self, request, pk: int):
        invoice = get_object_or_404(Invoice, pk=pk)
        if request.method == "POST":
            try:
                found = refresh.invoice_fetch_pdf(invoice=invoice)
            except errors.ProviderError as exc:
                self.message_user(request, provider_error_message(exc), messages.ERROR)
            else:
                if found:
                    self.message_user(request, "PDF downloaded from the provider.")
                else:
                    self.message_user(request, "The provider has no PDF for this invoice.", messages.WARNING)
        return self._back(pk)

    # Actions ---------------------------------------------------------------------------------
    @admin.action(description="Mark selected invoices as paid…")
    def mark_paid_action(self, request, queryset: QuerySet[Invoice]):
        return self._mark_paid_page(request, queryset)

    def _mark_paid_page(self, request, queryset: QuerySet[Invoice], single: Invoice | None = None):
        invoices = list(queryset.select_related("customer").order_by("pk"))
        providers = {i.provider for i in invoices}
        form = MarkPaidForm(request.POST if request.POST.get("post") == "yes" else None, providers=providers)
        if form.is_bound and form.is_valid():
            try:
                if single is not None:
                    services.invoice_mark_paid(
                        invoice=single, paid_at=form.cleaned_data["paid_at"], actor=request.user
                    )
                    self._report_push(request, push.push_invoices([single.pk]), single)
                    return self._back(single.pk)
                report = services.invoices_bulk_mark_paid(
                    invoices=invoices, paid_at=form.cleaned_data["paid_at"], actor=request.user
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self._report_batch(request, report, "marked paid")
                return HttpResponseRedirect(
                    reverse("admin:invoices_actionbatch_change", args=[report.batch.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Mark as paid",
            "form": form,
            "invoices": invoices,
            "single": single,
            "has_qonto": Provider.QONTO in providers,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/invoices/invoice/mark_paid.html", context)

    def _report_batch(self, request, report: services.BatchReport, verb: str) -> None:
        if report.queued:
            count = len(report.queued)
            self.message_user(
                request,
                ngettext(
                    "%(count)d invoice will be %(verb)s at the provider in the background.",
                    "%(count)d invoices will be %(verb)s at the provider in the background.",
                    count,
                )
                % {"count": count, "verb": verb},
                messages.SUCCESS,
            )
        if report.skipped:
            count = len(report.skipped)
            reasons = "; ".join(f"{invoice}: {reason}" for invoice, reason in report.skipped[:20])
            more = f" and {count - 20} more" if count > 20 else ""
            self.message_user(
                request,
                ngettext("%(count)d invoice skipped", "%(count)d invoices skipped", count) % {"count": count}
                + f" ({reasons}{more}).",
                messages.WARNING,
            )

    @admin.action(description="Create selected at the provider")
    def create_at_provider_action(self, request, queryset: QuerySet[Invoice]):
        report = services.invoices_bulk_request_create(
            invoices=list(queryset.order_by("pk")), actor=request.user
        )
        self._report_batch(request, report, "created")
        return HttpResponseRedirect(reverse("admin:invoices_actionbatch_change", args=[report.batch.pk]))

    @admin.action(description="Refresh selected from the provider")
    def refresh_action(self, request, queryset: QuerySet[Invoice]):
        self._refresh(request, list(queryset.values_list("pk", flat=True)))

    def _refresh(self, request, pks: list[int]) -> None:
        if len(pks) > 20:
            from invoices.tasks import refresh_invoices

            refresh_invoices.delay(pks)
            self.message_user(request, f"{len(pks)} invoices will be refreshed in the background.")
            return
        outcome = refresh.refresh_invoices(invoice_ids=pks)
        if outcome["refreshed"]:
            self.message_user(
                request,
                ngettext("%(n)d invoice refreshed.", "%(n)d invoices refreshed.", outcome["refreshed"])
                % {"n": outcome["refreshed"]},
            )
        if outcome["removed"]:
            self.message_user(
                request,
                ngettext(
                    "%(n)d invoice no longer exists at the provider and is marked removed.",
                    "%(n)d invoices no longer exist at the provider and are marked removed.",
                    outcome["removed"],
                )
                % {"n": outcome["removed"]},
                messages.WARNING,
            )
        for pk, reason in outcome["failed"].items():
            self.message_user(request, f"Invoice #{pk} could not be refreshed: {reason}", messages.ERROR)

    @admin.action(description="Retry failed changes")
    def retry_action(self, request, queryset: QuerySet[Invoice]):
        retried, skipped = 0, []
        for invoice in queryset.order_by("pk"):
            try:
                services.invoice_retry(invoice=invoice, actor=request.user)
                retried += 1
            except ValidationError as exc:
                skipped.append(" ".join(exc.messages))
        if retried:
            self.message_user(
                request,
                ngettext("%(n)d invoice queued again.", "%(n)d invoices queued again.", retried)
                % {"n": retried},
            )
        if skipped:
            self.message_user(request, " ".join(skipped[:20]), messages.WARNING)

    @admin.action(description="Export selected as CSV")
    def export_csv_action(self, request, queryset: QuerySet[Invoice]):
        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        header = [
            "provider",
            "number",
            "customer",
            "currency",
            "amount",
            "vat",
            "issue_date",
            "due_date",
            "status",
            "paid_at",
            "remote_id",
            "sync_state",
            "removed_at",
        ]

        def rows():
            yield writer.writerow(header)
            for inv in (
                queryset.select_related("customer").order_by("provider", "issue_date", "pk").iterator(2000)
            ):
                yield writer.writerow(
                    [
                        inv.provider,
                        inv.number,
                        inv.customer.name if inv.customer else inv.customer_name,
                        inv.currency,
                        "" if inv.amount is None else f"{inv.amount:.2f}",
                        "" if inv.vat_amount is None else f"{inv.vat_amount:.2f}",
                        inv.issue_date or "",
                        inv.due_date or "",
                        inv.status,
                        timezone.localtime(inv.paid_at).isoformat() if inv.paid_at else "",
                        inv.remote_id or "",
                        inv.sync_state,
                        timezone.localtime(inv.removed_at).isoformat() if inv.removed_at else "",
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="invoices-{timezone.localdate():%Y%m%d}.csv"'
        return response


def _describe(invoice: Invoice, outcome: push.PushResult) -> str:
    """One plain sentence about where an invoice stands after a push attempt."""
    provider = invoice.get_provider_display()
    if invoice.pk in outcome.failed:
        return f"not done. {outcome.failed[invoice.pk]} Your upload is kept; correct it and send again."
    if invoice.sync_state == SyncState.SYNCED:
        if invoice.status == InvoiceStatus.PAID and invoice.paid_at:
            return f"confirmed by {provider} (paid {timezone.localtime(invoice.paid_at):%Y-%m-%d %H:%M})."
        return f"confirmed by {provider}."
    if invoice.sync_state == SyncState.LOCAL_DRAFT:
        return "saved as a local draft."
    if invoice.last_error:
        return f"not confirmed yet ({invoice.last_error}); it will be sent again automatically."
    return f"queued for {provider}."


# Batches, sync runs -----------------------------------------------------------------------------
@admin.register(ActionBatch)
class ActionBatchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "actor", "created_at", "size")
    list_filter = ("kind",)
    change_form_template = "admin/invoices/actionbatch/change_form.html"

    @admin.display(description="invoices")
    def size(self, obj):
        return obj.items.count()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = get_object_or_404(ActionBatch, pk=object_id)
        extra_context = {**(extra_context or {}), "rows": selectors.batch_rows(batch), "batch": batch}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
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
        "duration",
        "error",
    )
    list_filter = ("provider", "kind", "status")
    date_hierarchy = "started_at"

    @admin.display(description="duration")
    def duration(self, obj: SyncRun) -> str:
        if not obj.finished_at:
            return "running"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f} s"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
