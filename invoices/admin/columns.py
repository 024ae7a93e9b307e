"""The invoice list's columns and the page's computed fields.

Each is written with format_html from the row's own fields (no query, no reverse() per row): a page
of 100 rows renders each cell 100 times.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from invoices import formatting
from invoices.admin.listing import pdf_url
from invoices.models import Invoice, Provider, SyncState


def provider_anchor(invoice: Invoice, label: str):
    """A link to the invoice at its provider (the MijnKlantportaal payment link, the Qonto
    ``invoice_url``), opened in a new tab that gets no handle on this page."""
    return format_html(
        '<a href="{}" class="provider-link" target="_blank" rel="noopener noreferrer">{}</a>',
        invoice.payment_link,
        label,
    )


class InvoiceColumns:
    """Mixed into the invoice admin, beside ``InvoicePages`` and ``CorrectionPages``."""

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Invoice):
        """Django's own checkbox, written out rather than through the form widget's template."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(_("Select this object for an action - {}"), str(obj)),
        )

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: Invoice):
        badge = "MKP" if obj.provider == Provider.MKP else "Qonto"
        return format_html(
            '<span class="provider-badge provider-{}" title="{}" aria-hidden="true">{}</span> <span class="invoice-number">{}</span>',
            obj.provider,
            obj.get_provider_display(),
            badge,
            obj.number or obj.pdf_display_name or f"#{obj.pk}",
        )

    @admin.display(description="customer", ordering="customer__name")
    def customer_display(self, obj: Invoice):
        name = obj.customer.name if obj.customer else obj.customer_name
        return format_html('<span class="ellipsis" title="{}">{}</span>', name, name)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Invoice) -> str:
        return formatting.money(obj.amount, obj.currency)

    @admin.display(description="VAT")
    def vat_display(self, obj: Invoice) -> str:
        return formatting.money(obj.vat_amount, obj.currency) or formatting.EMPTY

    @admin.display(description="due", ordering="due_date")
    def due_display(self, obj: Invoice):
        return format_html(
            '<span title="issued {}">{}</span>', formatting.day(obj.issue_date), formatting.day(obj.due_date)
        )

    @admin.display(description="paid", ordering="paid_at")
    def paid_display(self, obj: Invoice) -> str:
        return formatting.paid_on(obj)

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

    @admin.display(description="open")
    def links(self, obj: Invoice):
        """The invoice at the provider (in a new tab) and its PDF."""
        links = []
        if obj.payment_link:
            links.append(provider_anchor(obj, "provider"))
        if obj.pdf or obj.remote_id:
            url = pdf_url(obj.pk)
            links.append(format_html('<a href="{}" class="open-pdf-link" target="_blank">PDF</a>', url))
        return format_html_join(" ", "{}", ((link,) for link in links)) or formatting.EMPTY

    @admin.display(description="at the provider")
    def provider_link(self, obj: Invoice):
        return provider_anchor(obj, obj.payment_link) if obj.payment_link else formatting.EMPTY

    @admin.display(description="PDF")
    def pdf_link(self, obj: Invoice):
        if not obj.pdf and not obj.remote_id:
            return formatting.EMPTY
        url = pdf_url(obj.pk)
        label = "Open PDF" if obj.pdf else "Open PDF (fetched from the provider)"
        return format_html('<a href="{}" class="open-pdf-link" target="_blank">{}</a>', url, label)
