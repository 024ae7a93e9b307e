"""Admin forms: they turn what staff typed into clean values and say plainly what is wrong."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from invoices.models import Customer, Provider
from invoices.services import validate_number_free, validate_paid_at, validate_pdf, validate_pdf_size

AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


class CalendarDateField(forms.DateField):
    """A date in YYYY-MM-DD that must exist in the calendar (no 2024-04-31)."""

    widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValidationError("Enter the date as YYYY-MM-DD, for example 2026-11-22.", code="invalid")
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"{text} is not a real date.", code="invalid") from None


class AmountField(forms.CharField):
    """Euros with a dot and at most two decimals: 12.95. Not 12,95, not negative."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", "Euros with a dot for decimals, e.g. 12.95")
        super().__init__(**kwargs)

    def to_python(self, value):
        text = (super().to_python(value) or "").strip()
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
    validate_pdf(name=upload.name, content=content)


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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(provider=Provider.MKP).order_by("name")

    def clean_number(self) -> str:
        number = self.cleaned_data["number"].strip()
        validate_number_free(provider=Provider.MKP, number=number)
        return number

    def clean_paid_at(self):
        paid_at = self.cleaned_data.get("paid_at")
        if paid_at:
            validate_paid_at(paid_at, providers=[Provider.MKP])
        return paid_at

    def clean(self):
        data = super().clean()
        issued, due = data.get("issue_date"), data.get("due_date")
        if issued and due and due < issued:
            self.add_error("due_date", "The due date cannot be before the issue date.")
        return data


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
