"""The invoice admin's own pages: add from a PDF, mark paid, refresh, send, and the PDF itself.

Each page checks its permission first and answers 403 without it, to a GET as to a POST.
"""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import ngettext

from invoices.forms import MarkPaidForm, MkpInvoiceForm, QontoUploadForm
from invoices.messages import invoice_name
from invoices.models import Customer, Invoice, InvoiceStatus, Provider, SyncState
from invoices.services import intake, payment, refresh, retry
from invoices.services.batches import BatchReport
from invoices.services.sending import Sent

_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def pdf_download_name(invoice: Invoice) -> str:
    """The file name a browser saves the PDF under: the invoice number, made safe."""
    base = _UNSAFE_IN_FILE_NAME.sub("-", invoice.number).strip(".-")[:100]
    return f"{base or f'invoice-{invoice.pk}'}.pdf"


class InvoicePages:
    """Mixed into the invoice admin (a ``GuardedAdmin``)."""

    def _back(self, pk: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:invoices_invoice_change", args=[pk]))

    def controls(self, request: HttpRequest, invoice: Invoice) -> dict[str, bool]:
        """Which buttons the invoice page shows this user: only those the user may use."""
        at_provider = bool(invoice.remote_id) and not invoice.removed_at
        failed = invoice.sync_state == SyncState.FAILED
        draft = not invoice.remote_id and invoice.sync_state == SyncState.LOCAL_DRAFT
        return {
            "open_pdf": bool(invoice.pdf) or at_provider,
            "mark_paid": self.has_mark_paid_permission(request)
            and at_provider
            and invoice.status == InvoiceStatus.OPEN
            and not invoice.pending_action,
            "refresh": self.has_refresh_from_provider_permission(request) and bool(invoice.remote_id),
            "send": (failed and self.has_retry_push_permission(request))
            or (draft and self.has_create_at_provider_permission(request)),
            "send_again": failed,
            **self.correction_controls(request, invoice),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invoice = self.get_object(request, object_id)
        if invoice is not None:
            extra_context = {**(extra_context or {}), "controls": self.controls(request, invoice)}
        return super().change_view(request, object_id, form_url, extra_context)

    # Adding ------------------------------------------------------------------------------------
    def add_view(self, request: HttpRequest, form_url="", extra_context=None):
        self.require(self.has_add_permission(request))
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
        upload = form.cleaned_data["pdf"]
        fields = {
            **form.service_fields(),
            "pdf_name": upload.name,
            "pdf_content": upload.read(),
            "actor": request.user,
        }
        try:
            if draft:
                invoice = intake.invoice_create_draft(provider=Provider.MKP, **fields)
            else:
                sent = intake.invoice_create_and_send(provider=Provider.MKP, **fields)
        except ValidationError as exc:
            form.add_error(None, exc)
            return None
        if not draft:
            self._report_sent(request, sent)
            return self._back(sent.invoice.pk)
        self.message_user(
            request,
            f"Invoice {invoice} saved as a local draft; it is not at MijnKlantportaal yet."
            " Use “Create at provider” on its page to send it.",
        )
        return self._back(invoice.pk)

    def _add_qonto(self, request, form: QontoUploadForm, draft: bool) -> list[intake.FileResult]:
        files = [(upload.name, upload.read()) for upload in form.cleaned_data["pdfs"]]
        return intake.invoices_import_qonto(files=files, actor=request.user, send=not draft)

    def _report_sent(self, request, sent: Sent) -> None:
        self._report(request, sent, f"{sent.invoice}: {sent.text}")

    def _report(self, request, sent: Sent, text: str | None = None) -> None:
        level = {
            Sent.DONE: messages.SUCCESS,
            Sent.FAILED: messages.ERROR,
            Sent.WAITING: messages.WARNING,
        }[sent.outcome]
        self.message_user(request, text or sent.text, level)

    # Acting on one invoice -----------------------------------------------------------------------
    def mark_paid_view(self, request, pk: int):
        self.require(self.has_mark_paid_permission(request))
        invoice = get_object_or_404(Invoice, pk=pk)
        return self.mark_paid_page(request, Invoice.objects.filter(pk=invoice.pk), single=invoice)

    def refresh_view(self, request, pk: int):
        self.require(self.has_refresh_from_provider_permission(request))
        invoice = get_object_or_404(Invoice, pk=pk)
        if request.method == "POST":
            self._report(request, refresh.invoice_refresh(invoice=invoice))
        return self._back(pk)

    def send_view(self, request, pk: int):
        invoice = get_object_or_404(Invoice, pk=pk)
        failed = invoice.sync_state == SyncState.FAILED
        self.require(
            self.has_retry_push_permission(request)
            if failed
            else self.has_create_at_provider_permission(request)
        )
        if request.method == "POST":
            try:
                sent = retry.invoice_send(invoice=invoice, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return self._back(pk)
            self._report_sent(request, sent)
        return self._back(pk)

    def fetch_pdf_view(self, request, pk: int):
        """A fresh copy of the provider's PDF, then the PDF itself."""
        self.require(self.has_refresh_from_provider_permission(request))
        invoice = get_object_or_404(Invoice, pk=pk)
        if request.method != "POST":
            return self._back(pk)
        if not self._fetch_pdf(request, invoice):
            return self._back(pk)
        return HttpResponseRedirect(reverse("admin:invoices_invoice_pdf", args=[pk]) + "?download=1")

    def _fetch_pdf(self, request, invoice: Invoice) -> bool:
        try:
            found = refresh.invoice_fetch_pdf(invoice=invoice)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return False
        if not found:
            self.message_user(
                request,
                f"{invoice_name(invoice)}: {invoice.get_provider_display()} has no PDF for it (yet). "
                "Try again later, or look at the invoice at the provider.",
                messages.WARNING,
            )
        return found

    def pdf_view(self, request, pk: int):
        """The invoice's PDF, for staff who may see the invoice; fetched first when not kept here.
        ``?download=1`` sends it as a file to save rather than to show."""
        invoice = get_object_or_404(Invoice, pk=pk)
        self.require(self.has_view_permission(request, invoice))
        if not invoice.pdf and not self._fetch_pdf(request, invoice):
            return self._back(pk)
        invoice.refresh_from_db(fields=["pdf"])
        try:
            handle = invoice.pdf.open("rb")
        except OSError:
            self.message_user(
                request,
                f"{invoice_name(invoice)}: the stored PDF cannot be read. Use “Download PDF from provider” "
                "for a fresh copy, or ask an administrator to check the file storage.",
                messages.ERROR,
            )
            return self._back(pk)
        response = FileResponse(
            handle,
            content_type="application/pdf",
            filename=pdf_download_name(invoice),
            # "Download PDF from provider" saves the file; "Open PDF" shows it in the browser.
            as_attachment=request.GET.get("download") == "1",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response

    # Marking paid, one or many ------------------------------------------------------------------
    def mark_paid_page(self, request, queryset: QuerySet[Invoice], single: Invoice | None = None):
        invoices = list(queryset.select_related("customer").order_by("pk"))
        providers = {i.provider for i in invoices}
        form = MarkPaidForm(request.POST if request.POST.get("post") == "yes" else None, providers=providers)
        if form.is_bound and form.is_valid():
            try:
                if single is not None:
                    sent = payment.invoice_mark_paid_and_send(
                        invoice=single, paid_at=form.cleaned_data["paid_at"], actor=request.user
                    )
                    self._report_sent(request, sent)
                    return self._back(single.pk)
                report = payment.invoices_bulk_mark_paid(
                    invoices=invoices, paid_at=form.cleaned_data["paid_at"], actor=request.user
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return self.report_batch(request, report, "marked paid at the provider")
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

    def report_batch(self, request, report: BatchReport, what: str) -> HttpResponseRedirect:
        """Say what was queued and skipped, then show the batch's progress page."""
        if report.queued:
            count = len(report.queued)
            self.message_user(
                request,
                ngettext(
                    "%(count)d invoice will be %(what)s in the background.",
                    "%(count)d invoices will be %(what)s in the background.",
                    count,
                )
                % {"count": count, "what": what},
                messages.SUCCESS,
            )
        if report.skipped:
            count = len(report.skipped)
            reasons = "; ".join(
                # A reason that names its invoice already is not prefixed with the name again.
                reason if reason.startswith(str(invoice)) else f"{invoice}: {reason}"
                for invoice, reason in report.skipped[:20]
            )
            more = f" and {count - 20} more" if count > 20 else ""
            self.message_user(
                request,
                ngettext("%(count)d invoice skipped", "%(count)d invoices skipped", count) % {"count": count}
                + f" ({reasons}{more}).",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:invoices_actionbatch_change", args=[report.batch.pk]))
