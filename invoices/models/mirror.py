"""The local mirror of the providers' customers and invoices, plus our own bookkeeping on each invoice.

Mirrored fields are written by sync and by the answers to our own writes (remote wins there).
Bookkeeping fields (sync state, pending action, errors, attempts) are ours and a pull never
touches them. An invoice row is also the outbox: a pending action is recorded on it first and
pushed by a task after commit.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone


class Provider(models.TextChoices):
    MKP = "mkp", "MijnKlantportaal"
    QONTO = "qonto", "Qonto"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    CANCELED = "canceled", "Canceled"


class SyncState(models.TextChoices):
    LOCAL_DRAFT = "local_draft", "Local draft"
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SYNCED = "synced", "In sync"
    FAILED = "failed", "Failed"
    # A draft or failed upload staff set aside: it never reached the provider; kept for the record.
    DISCARDED = "discarded", "Discarded"


class PendingAction(models.TextChoices):
    NONE = "", "—"
    CREATE = "create", "Create at provider"
    MARK_PAID = "mark_paid", "Mark as paid"


class Customer(models.Model):
    provider = models.CharField(max_length=16, choices=Provider.choices)
    remote_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "remote_id"], name="customer_unique_remote_id"),
        ]
        indexes = [
            # The invoice search by customer name (icontains is UPPER(name) LIKE): PostgreSQL only.
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="customer_name_trgm"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.remote_id} ({self.get_provider_display()})"


def invoice_pdf_path(instance: Invoice, filename: str) -> str:
    """A name of our own: never the uploaded file's name nor anything a provider sent."""
    return f"invoices/{instance.provider}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.pdf"


#: Invoice columns that mirror the provider. Nothing else is written by a pull.
MIRRORED_FIELDS = (
    "number",
    "customer_remote_id",
    "customer_name",
    "issue_date",
    "due_date",
    "amount",
    "vat_amount",
    "currency",
    "status",
    "paid_at",
    "remote_created_at",
    "remote_updated_at",
    "payment_link",
    "attachment_id",
    "raw",
)


class Invoice(models.Model):
    # Indexed through the indexes below that start with it (a sync writes every index of a row).
    provider = models.CharField(max_length=16, choices=Provider.choices)
    remote_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - null until created remotely
    number = models.CharField(max_length=255, blank=True)  # MijnKlantportaal allows 255
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL)
    customer_remote_id = models.CharField(max_length=64, blank=True)
    customer_name = models.CharField(max_length=255, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    vat_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    paid_at = models.DateTimeField(null=True, blank=True)
    remote_created_at = models.DateTimeField(null=True, blank=True)
    remote_updated_at = models.DateTimeField(null=True, blank=True)
    payment_link = models.URLField(max_length=500, blank=True)
    attachment_id = models.CharField(max_length=64, blank=True)
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When we noticed the invoice was deleted at the provider."
    )
    raw = models.JSONField(default=dict, blank=True)
    pdf = models.FileField(upload_to=invoice_pdf_path, blank=True)
    pdf_name = models.CharField(
        max_length=255, blank=True, help_text="The uploaded file's name, for display."
    )
    pdf_sha256 = models.CharField(max_length=64, blank=True)

    # What staff asked for, kept until the provider confirmed it.
    send_notification = models.BooleanField(default=False)
    requested_paid_at = models.DateTimeField(null=True, blank=True)
    requested_paid_on = models.DateField(null=True, blank=True, help_text="Payment date asked for at Qonto.")

    # Bookkeeping: ours only, never overwritten by a pull.
    sync_state = models.CharField(max_length=16, choices=SyncState.choices, default=SyncState.SYNCED)
    pending_action = models.CharField(max_length=16, choices=PendingAction.choices, blank=True, default="")
    outcome_unknown = models.BooleanField(
        default=False, help_text="A create was sent but no answer came back: check before sending again."
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lookup_next_page = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A create whose answer was lost is looked for at the provider: the next page to read.",
    )
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        # One permission per kind of act at a provider, next to Django's own view permission.
        permissions = [
            ("create_at_provider", "Can create invoices at the provider (upload, draft, send)"),
            ("mark_paid", "Can mark invoices paid at the provider"),
            ("refresh_from_provider", "Can refresh invoices and fetch PDFs from the provider"),
            ("retry_push", "Can retry failed changes"),
            ("export_invoices", "Can export invoices as CSV"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "remote_id"],
                condition=Q(remote_id__isnull=False),
                name="invoice_unique_remote_id",
            ),
        ]
        indexes = [
            models.Index(fields=["sync_state", "next_attempt_at"], name="invoice_outbox"),
            # What customers owe (selectors.outstanding_q, exactly), by due date: the overdue filter
            # and its totals, and the dashboard's outstanding, aging and top-customer figures read
            # this small index alone on PostgreSQL (the included columns; index-only scans).
            models.Index(
                fields=["due_date", "id"],
                include=["provider", "currency", "amount", "customer_id", "customer_name", "sync_state"],
                condition=Q(status=InvoiceStatus.OPEN, remote_id__isnull=False, removed_at__isnull=True),
                name="invoice_outstanding",
            ),
            # The list, newest first (read backwards), and the filters that keep most rows; with
            # what the dashboard's invoiced-per-month needs, so it reads the index alone.
            models.Index(
                fields=["issue_date", "id"],
                include=["provider", "status", "currency", "amount", "remote_id", "removed_at"],
                name="invoice_list_order",
            ),
            # The same order for the few rows of the outstanding and "removed" filters: written only
            # for open and removed invoices.
            models.Index(
                fields=["issue_date", "id"],
                condition=Q(status=InvoiceStatus.OPEN, removed_at__isnull=True),
                name="invoice_open_order",
            ),
            models.Index(
                fields=["issue_date", "id"],
                condition=Q(removed_at__isnull=False),
                name="invoice_removed_order",
            ),
            # The due and paid date ranges, in their own order (the list sorts by the date of a range
            # filter); the paid one with what the dashboard's paid-per-month needs.
            models.Index(fields=["due_date", "id"], name="invoice_due"),
            models.Index(
                fields=["paid_at", "id"],
                include=["provider", "status", "currency", "amount", "removed_at"],
                name="invoice_paid",
            ),
            # PostgreSQL only (see migration 0006): equality and prefix (LIKE 'F-2026%') on numbers,
            # and part of the customer's name (UPPER(customer_name) LIKE '%ACME%', by trigrams).
            models.Index(fields=["number"], opclasses=["varchar_pattern_ops"], name="invoice_number_prefix"),
            GinIndex(OpClass(Upper("customer_name"), name="gin_trgm_ops"), name="invoice_customer_trgm"),
        ]

    def __str__(self) -> str:
        if self.number or self.remote_id:
            return self.number or self.remote_id
        # A Qonto upload has no number until Qonto read its file: named by the file.
        return f"the upload {self.pdf_name}" if self.pdf_name else f"Invoice #{self.pk}"

    @property
    def is_at_provider(self) -> bool:
        return bool(self.remote_id)

    @property
    def pdf_display_name(self) -> str:
        return self.pdf_name or (self.pdf.name.rsplit("/", 1)[-1] if self.pdf else "")

    @property
    def is_overdue(self) -> bool:
        """As ``selectors.overdue_q``: open at the provider, not removed, past its due date."""
        return (
            self.status == InvoiceStatus.OPEN
            and self.remote_id is not None
            and self.due_date is not None
            and self.due_date < timezone.localdate()
            and self.removed_at is None
        )
