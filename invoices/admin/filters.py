"""The invoice list's own filters."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ORDER_VAR
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from invoices import selectors
from invoices.models import Customer, InvoiceStatus, SyncState

#: The dates a range filter takes: wide enough for any invoice, inside what a time zone can convert.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)


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


class OutstandingFilter(admin.SimpleListFilter):
    """What customers owe, in all or by aging bucket: the dashboard's figures link here."""

    title = "outstanding"
    parameter_name = "outstanding"

    def lookups(self, request, model_admin):
        return [("all", "All outstanding"), *((key, label) for key, label, _, _ in selectors.AGING_BUCKETS)]

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset.filter(selectors.outstanding_q())
        if self.value() in {key for key, _, _, _ in selectors.AGING_BUCKETS}:
            return queryset.filter(selectors.aging_q(self.value()))
        return queryset


class DiscardedFilter(admin.SimpleListFilter):
    """Discarded uploads are kept for the record but hidden from the list unless asked for."""

    title = "discarded uploads"
    parameter_name = "discarded"

    def lookups(self, request, model_admin):
        return [("show", "Shown too"), ("only", "Only discarded")]

    def choices(self, changelist):
        for choice in super().choices(changelist):
            if choice["display"] == "All":
                choice["display"] = "Hidden"
            yield choice

    def queryset(self, request, queryset):
        if self.value() == "only" or request.GET.get("sync_state__exact") == SyncState.DISCARDED:
            return queryset.filter(sync_state=SyncState.DISCARDED)
        if self.value() == "show":
            return queryset
        return queryset.exclude(sync_state=SyncState.DISCARDED)


#: A list narrowed to a date range (or to the overdue invoices) is sorted by that date, latest first,
#: unless staff sort it by a column: the date's index then serves both the filter and the order.
SORTING_FILTERS = [
    ("due_date", ("due_date__gte", "due_date__lte", "overdue")),
    ("paid_at", ("paid_at__gte", "paid_at__lte")),
]


def filter_ordering(params) -> list[str] | None:
    """The order a date filter in ``params`` (the list's query) asks for, or None."""
    if params.get(ORDER_VAR):
        return None
    for field, names in SORTING_FILTERS:
        if any(params.get(name) for name in names):
            return [f"-{field}", "-id"]
    return None


class DateRangeFilter(admin.FieldListFilter):
    """From and to dates (both included) on a date or a moment: ``?due_date__gte=2026-01-01&due_date__lte=2026-01-31``.

    A moment is compared with the days of the staff member's time zone."""

    template = "admin/invoices/invoice/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.since_param = f"{field_path}__gte"
        self.until_param = f"{field_path}__lte"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.since = self._date(self.since_param)
        self.until = self._date(self.until_param)

    def _date(self, param: str) -> date | None:
        values = self.used_parameters.get(param) or [""]
        text = (values[-1] if isinstance(values, list) else values).strip()
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise IncorrectLookupParameters(f"{param}: not a date (YYYY-MM-DD): {text!r}") from exc
        if not FIRST_DAY <= day <= LAST_DAY:  # the calendar's edges overflow in a time zone
            raise IncorrectLookupParameters(f"{param}: a date from {FIRST_DAY} to {LAST_DAY}: {text!r}")
        return day

    def expected_parameters(self):
        return [self.since_param, self.until_param]

    def queryset(self, request, queryset):
        moments = isinstance(self.field, models.DateTimeField)
        if self.since:
            since = _start_of(self.since) if moments else self.since
            queryset = queryset.filter(**{f"{self.field_path}__gte": since})
        if self.until:
            if moments:
                queryset = queryset.filter(
                    **{f"{self.field_path}__lt": _start_of(self.until + timedelta(days=1))}
                )
            else:
                queryset = queryset.filter(**{f"{self.field_path}__lte": self.until})
        return queryset

    def choices(self, changelist):
        own = self.expected_parameters()
        yield {
            "since_param": self.since_param,
            "until_param": self.until_param,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "hidden": _other_params(changelist, own),
            "reset_url": changelist.get_query_string(remove=own),
            "active": bool(self.since or self.until),
            "sorts": filter_ordering(changelist.params) == [f"-{self.field_path}", "-id"],
        }


class CustomerFilter(admin.ListFilter):
    """One customer, chosen by typing part of the name (the admin's autocomplete of customers)."""

    title = "customer"
    parameter_name = "customer"
    template = "admin/invoices/invoice/customer_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        values = params.pop(self.parameter_name, None) or [""]
        text = values[-1] if isinstance(values, list) else values
        if text and not selectors.is_row_id(text):
            raise IncorrectLookupParameters(f"customer: not an id: {text!r}")
        self.customer_id = int(text) if text else None

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def queryset(self, request, queryset):
        if self.customer_id is None:
            return queryset
        return queryset.filter(customer_id=self.customer_id)

    def choices(self, changelist):
        customer = Customer.objects.filter(pk=self.customer_id).first() if self.customer_id else None
        yield {
            "parameter": self.parameter_name,
            "selected": customer,
            "hidden": _other_params(changelist, [self.parameter_name]),
            "reset_url": changelist.get_query_string(remove=[self.parameter_name]),
            "autocomplete_url": reverse("admin:autocomplete"),
        }


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _other_params(changelist, own: list[str]) -> list[tuple[str, str]]:
    """The list's other parameters (filters, search, order), kept by a filter's own small form."""
    return [
        (name, value)
        for name, values in changelist.filter_params.items()
        if name not in own
        for value in values
    ]
