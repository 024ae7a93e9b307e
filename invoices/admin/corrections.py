"""Correcting an upload that never reached its provider, and discarding it.

Both pages need the permission to create invoices at the provider, to a GET as to a POST.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from invoices.forms import MkpCorrectionForm, QontoCorrectionForm
from invoices.models import Invoice, Provider
from invoices.services import corrections


class CorrectionPages:
    """Mixed into the invoice admin, beside ``InvoicePages``."""

    def correction_controls(self, request: HttpRequest, invoice: Invoice) -> dict[str, bool]:
        local = self.has_create_at_provider_permission(request) and not corrections.local_refusal(invoice)
        return {"correct": local, "discard": local}

    def _local_invoice(self, request: HttpRequest, pk: int) -> Invoice | None:
        """The invoice when it can still be corrected or discarded; otherwise a message says why."""
        invoice = get_object_or_404(Invoice, pk=pk)
        refusal = corrections.local_refusal(invoice)
        if refusal:
            self.message_user(request, refusal, messages.WARNING)
            return None
        return invoice

    def correct_view(self, request: HttpRequest, pk: int):
        self.require(self.has_create_at_provider_permission(request))
        invoice = self._local_invoice(request, pk)
        if invoice is None:
            return self._back(pk)
        form_class = MkpCorrectionForm if invoice.provider == Provider.MKP else QontoCorrectionForm
        form = form_class(request.POST or None, request.FILES or None, invoice=invoice)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data.get("pdf")
            correction = {
                **form.service_fields(),
                "pdf_name": upload.name if upload else "",
                "pdf_content": upload.read() if upload else b"",
            }
            try:
                if "_send" in request.POST:
                    sent = corrections.invoice_correct_and_send(
                        invoice=invoice, actor=request.user, **correction
                    )
                else:
                    corrections.invoice_correct(invoice=invoice, actor=request.user, **correction)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                if "_send" in request.POST:
                    self._report_sent(request, sent)
                else:
                    self.message_user(
                        request,
                        f"{invoice}: corrected and kept as a local draft."
                        " Use “Create at provider” on its page to send it.",
                        messages.SUCCESS,
                    )
                return self._back(pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Correct {invoice}",
            "original": invoice,
            "form": form,
        }
        return TemplateResponse(request, "admin/invoices/invoice/correct.html", context)

    def discard_view(self, request: HttpRequest, pk: int):
        self.require(self.has_create_at_provider_permission(request))
        invoice = self._local_invoice(request, pk)
        if invoice is None:
            return self._back(pk)
        if request.method == "POST":
            try:
                corrections.invoice_discard(invoice=invoice, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{invoice} discarded: it never reached {invoice.get_provider_display()}."
                    " Its file and history are kept; the list hides it unless you filter on discarded.",
                    messages.SUCCESS,
                )
            return self._back(pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Discard {invoice}?",
            "original": invoice,
        }
        return TemplateResponse(request, "admin/invoices/invoice/discard.html", context)
