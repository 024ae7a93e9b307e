"""Admin forms: they turn what staff typed into clean values and say plainly what is wrong."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from invoices.models import Customer, Invoice, Provider
from invoices.validation import (
    ZERO_CONFIRMATION,
    check_pdf,
    parse_amount,
    parse_calendar_date,
    validate_invoice_fields,
    validate_paid_at,
    validate_pdf_size,
)

RULED_FIELDS = ("customer", "number", "issue_date", "due_date", "amount")


class CalendarDateField(forms.DateField):
    """A date in YYYY-MM-DD that must exist in the calendar (no 2024-04-31)."""

    widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")

    def to_python(self, value):
        if isinstance(value, date):
            return value
        return parse_calendar_date(str(value) if value not in self.empty_values else "")


class AmountField(forms.CharField):
    """Euros with a dot and at most two decimals: 12.95. Not 12,95, not negative."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", "Euros with a dot for decimals, e.g. 12.95")
        super().__init__(**kwargs)

    def to_python(self, value):
        return parse_amount(super().to_python(value))

    def prepare_value(self, value):
        return f"{value:.2f}" if isinstance(value, Decimal) else value


class PdfField(forms.FileField):
    def clean(self, data, initial=None):
        upload = super().clean(data, initial)
        if upload:
            check_upload(upload)
        return upload


def check_upload(upload) -> None:
    """The size the upload handler counted comes first: an oversized file is never read."""
    validate_pdf_size(name=upload.name, size=upload.size)
    upload.seek(0)
    content = upload.read()
    upload.seek(0)
    check_pdf(name=upload.name, content=content)


class MkpInvoiceForm(forms.Form):
    pdf = PdfField(label="PDF")
    customer = forms.ModelChoiceField(queryset=Customer.objects.none())
    number = forms.CharField(max_length=64, label="Invoice number")
    issue_date = CalendarDateField()
    due_date = CalendarDateField(required=False)
    amount = AmountField()
    paid_at = forms.SplitDateTimeField(
        required=False,
        label="Paid at",
        help_text="Leave empty when the invoice is still due.",
        widget=forms.SplitDateTimeWidget(
            date_attrs={"type": "date"},
            time_attrs={"type": "time", "step": 1},
            date_format="%Y-%m-%d",
            time_format="%H:%M:%S",
        ),
    )
    send_notification = forms.BooleanField(required=False, label="Send the customer a notification")

    # Shown only once the amount typed is 0.00: the service refuses 0.00 without it.
    zero_amount_confirmed = forms.BooleanField(required=False, label=ZERO_CONFIRMATION)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(provider=Provider.MKP).order_by("name")
        if not self._amount_typed_is_zero():
            del self.fields["zero_amount_confirmed"]

    def _amount_typed_is_zero(self) -> bool:
        try:
            return self.is_bound and parse_amount(self.data.get(self.add_prefix("amount"), "")) == 0
        except ValidationError:
            return False

    #: The invoice a correction form edits: its own number is not "already used".
    invoice_pk: int | None = None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        # The services' own rules, shown beside their fields before anything is stored.
        fields = self.service_fields()
        try:
            validate_invoice_fields(
                provider=Provider.MKP,
                **{k: fields[k] for k in RULED_FIELDS},
                zero_amount_confirmed=fields["zero_amount_confirmed"],
                exclude_pk=self.invoice_pk,
            )
        except ValidationError as exc:
            self.add_error(None, exc)
        if data.get("paid_at"):
            try:
                validate_paid_at(data["paid_at"], providers=[Provider.MKP])
            except ValidationError as exc:
                self.add_error("paid_at", exc)
        return data

    def service_fields(self) -> dict:
        """The cleaned values as the services take them."""
        data = self.cleaned_data
        names = ("customer", "number", "issue_date", "due_date", "amount", "paid_at", "send_notification")
        return {
            **{name: data.get(name) for name in names},
            "number": data.get("number", "").strip(),
            "zero_amount_confirmed": data.get("zero_amount_confirmed", False),
        }


class MkpCorrectionForm(MkpInvoiceForm):
    """A MijnKlantportaal upload's fields, as they are; a new PDF only when it changes."""

    def __init__(self, *args, invoice: Invoice, **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {
                "customer": invoice.customer_id,
                "number": invoice.number,
                "issue_date": invoice.issue_date,
                "due_date": invoice.due_date,
                "amount": invoice.amount,
                "paid_at": invoice.requested_paid_at
                and timezone.localtime(invoice.requested_paid_at).replace(microsecond=0),
                "send_notification": invoice.send_notification,
            },
        )
        super().__init__(*args, **kwargs)
        self.invoice_pk = invoice.pk
        self.fields["pdf"].required = False
        self.fields["pdf"].label = "Replace the PDF"
        self.fields["pdf"].help_text = f"Leave empty to keep {invoice.pdf_display_name}."


class QontoCorrectionForm(forms.Form):
    pdf = PdfField(label="Corrected PDF", help_text="Qonto reads number, amount and dates from the file.")

    def __init__(self, *args, invoice: Invoice, **kwargs) -> None:
        super().__init__(*args, **kwargs)

    def service_fields(self) -> dict:
        return {}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultiplePdfField(forms.FileField):
    widget = MultipleFileInput(attrs={"accept": "application/pdf"})

    def clean(self, data, initial=None):
        uploads = data if isinstance(data, list | tuple) else [data]
        uploads = [u for u in uploads if u]
        if not uploads:
            raise ValidationError("Choose at least one PDF.")
        if len(uploads) > settings.UPLOAD_MAX_FILES:
            raise ValidationError(
                f"At most {settings.UPLOAD_MAX_FILES} PDFs per upload; you chose {len(uploads)}."
                " Send the rest in a second upload."
            )
        errors = []
        for upload in uploads:
            try:
                super().clean(upload, initial)
                check_upload(upload)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return uploads


class QontoUploadForm(forms.Form):
    pdfs = MultiplePdfField(
        label="PDF files",
        help_text="One or many invoices already issued; Qonto reads number, amount and dates from each file.",
    )


class MarkPaidForm(forms.Form):
    paid_at = forms.SplitDateTimeField(
        label="Paid at",
        widget=forms.SplitDateTimeWidget(
            date_attrs={"type": "date"},
            time_attrs={"type": "time", "step": 1},
            date_format="%Y-%m-%d",
            time_format="%H:%M:%S",
        ),
        help_text="Qonto keeps the date only.",
    )

    def __init__(self, *args, providers: set[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("initial", {"paid_at": timezone.localtime().replace(microsecond=0)})
        super().__init__(*args, **kwargs)
        self.providers = providers or set()

    def clean_paid_at(self):
        paid_at = self.cleaned_data["paid_at"]
        validate_paid_at(paid_at, providers=self.providers)
        return paid_at
