"""The checks that forms and services share: a PDF, a number, an amount, dates, a payment moment.

Forms parse what staff typed (``parse_amount``, ``parse_calendar_date``) and check the PDF as it
arrives; services check the rules (``validate_invoice_fields``) and raise a ``ValidationError``
keyed by form field, so the page shows each message beside its field. The rules are written once;
the form and the service both apply them, so a service called without a form checks as much.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from pypdf import PdfReader

from integrations.qonto.mappers import latest_allowed_paid_on, paid_on
from invoices.models import Customer, Invoice, Provider, SyncState

AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
ZERO_CONFIRMATION = "Yes, the amount is 0.00"


# PDFs --------------------------------------------------------------------------------------------
def validate_pdf_size(*, name: str, size: int) -> None:
    """At most 5 MB per PDF: forms call it with the upload's size before reading the file."""
    if size > settings.MAX_PDF_BYTES:
        raise ValidationError(
            f"{name} is {size / 1024 / 1024:.1f} MB; the providers accept at most 5 MB per PDF."
        )


def check_pdf(*, name: str, content: bytes) -> str:
    """The content must be a readable PDF of at most 5 MB (the name proves nothing). Returns its
    SHA-256, which tells the same file apart whatever its name."""
    if not content:
        raise ValidationError(f"{name} is empty.")
    validate_pdf_size(name=name, size=len(content))
    if not content.lstrip()[:5] == b"%PDF-":
        raise ValidationError(f"{name} is not a PDF file.")
    try:
        pages = len(PdfReader(io.BytesIO(content)).pages)
    except Exception as exc:
        raise ValidationError(f"{name} is damaged and cannot be read as a PDF.") from exc
    if pages < 1:
        raise ValidationError(f"{name} is a PDF without pages.")
    return hashlib.sha256(content).hexdigest()


class AlreadyUploaded(ValidationError):
    """The same file is already an invoice of ours: ``invoice`` says which."""

    def __init__(self, message: str, *, invoice: Invoice) -> None:
        super().__init__(message)
        self.invoice = invoice


def validate_file_new(*, provider: str, name: str, sha256: str, exclude_pk: int | None = None) -> None:
    """Qonto reads everything from the file: the same file twice is the same invoice. Discarded
    uploads and invoices deleted at the provider do not count."""
    if provider != Provider.QONTO:
        return
    earlier = (
        Invoice.objects.filter(provider=provider, pdf_sha256=sha256, removed_at__isnull=True)
        .exclude(sync_state=SyncState.DISCARDED)
        .exclude(pk=exclude_pk)
        .order_by("pk")
        .first()
    )
    if earlier is None:
        return
    if earlier.remote_id:
        raise AlreadyUploaded(
            f"{name} was already imported as invoice {earlier}: nothing was sent again.", invoice=earlier
        )
    raise AlreadyUploaded(
        f"{name} is already uploaded as {earlier}, not at Qonto yet: open it to send or correct it.",
        invoice=earlier,
    )


# Typed values ------------------------------------------------------------------------------------
def parse_amount(text: str) -> Decimal | None:
    """Euros with a dot and at most two decimals: 12.95. Not 12,95, not negative."""
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("-"):
        raise ValidationError("The amount cannot be negative.")
    if "," in text:
        raise ValidationError(f"Use a dot for decimals: {text.replace(',', '.')} instead of {text}.")
    if not AMOUNT_RE.fullmatch(text):
        raise ValidationError("Enter an amount like 12.95 (digits, a dot and at most two decimals).")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValidationError("Enter an amount like 12.95.") from None


def parse_calendar_date(text: str) -> date | None:
    """A date in YYYY-MM-DD that must exist in the calendar (no 2024-04-31)."""
    text = (text or "").strip()
    if not text:
        return None
    if not DATE_RE.fullmatch(text):
        raise ValidationError("Enter the date as YYYY-MM-DD, for example 2026-11-22.", code="invalid")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text} is not a real date.", code="invalid") from None


# An invoice's fields -----------------------------------------------------------------------------
def validate_number_free(*, provider: str, number: str, exclude_pk: int | None = None) -> None:
    taken = Invoice.objects.filter(provider=provider, number=number, removed_at__isnull=True).exclude(
        sync_state=SyncState.DISCARDED
    )
    if exclude_pk:
        taken = taken.exclude(pk=exclude_pk)
    if number and taken.exists():
        raise ValidationError(f"Invoice number {number} is already used.")


def validate_invoice_fields(
    *,
    provider: str,
    customer: Customer | None,
    number: str,
    issue_date: date | None,
    due_date: date | None,
    amount: Decimal | None,
    zero_amount_confirmed: bool = False,
    exclude_pk: int | None = None,
) -> None:
    """What staff type for a MijnKlantportaal invoice (Qonto reads it from the PDF). The errors
    are keyed by the form's field names."""
    if provider != Provider.MKP:
        return
    errors: dict[str, list[str]] = {}
    missing = [
        label
        for label, absent in (
            ("a customer", customer is None),
            ("a number", not number),
            ("an issue date", issue_date is None),
            ("an amount", amount is None),
        )
        if absent
    ]
    if missing:
        raise ValidationError(f"MijnKlantportaal needs {', '.join(missing)}.")
    if amount < 0:
        errors["amount"] = ["The amount cannot be negative."]
    elif amount == 0 and not zero_amount_confirmed:
        errors["amount"] = [
            f"The amount is 0.00. If that is right, tick “{ZERO_CONFIRMATION}” and send again;"
            " otherwise correct the amount."
        ]
    if due_date and due_date < issue_date:
        errors["due_date"] = ["The due date cannot be before the issue date."]
    try:
        validate_number_free(provider=provider, number=number, exclude_pk=exclude_pk)
    except ValidationError as exc:
        errors["number"] = exc.messages
    if errors:
        raise ValidationError(errors)


# A payment moment --------------------------------------------------------------------------------
def validate_paid_at(paid_at: datetime, *, providers: Iterable[str]) -> None:
    """A payment moment staff give. MijnKlantportaal keeps the moment: not in the future. Qonto
    keeps the date in Paris: not after today there, whatever the hour."""
    providers = set(providers)
    if providers - {Provider.QONTO} and paid_at > timezone.now():
        raise ValidationError("The payment moment cannot be in the future.")
    if Provider.QONTO in providers:
        validate_qonto_paid_on(paid_on(paid_at))


def validate_qonto_paid_on(paid_on: date, *, now: datetime | None = None) -> None:
    latest = latest_allowed_paid_on(now or timezone.now())
    if paid_on > latest:
        raise ValidationError(
            f"Qonto does not accept a payment date in the future: choose {latest:%d %B %Y} or earlier."
        )


def validate_requested_paid_at(*, provider: str, paid_at: datetime | None) -> None:
    """A payment moment given with an upload, checked as the form's field."""
    if paid_at is None:
        return
    try:
        validate_paid_at(paid_at, providers=[provider])
    except ValidationError as exc:
        raise ValidationError({"paid_at": exc.messages}) from exc
