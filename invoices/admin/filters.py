"""The invoice list's own filters."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from invoices import selectors
from invoices.models import InvoiceStatus, SyncState


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
