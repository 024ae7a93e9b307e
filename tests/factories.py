from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from integrations.types import RemoteInvoice
from invoices.models import Customer, Invoice, InvoiceStatus, Provider, SyncState


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    provider = Provider.MKP
    remote_id = factory.Sequence(lambda n: f"cst_test{n:010d}")
    name = factory.Sequence(lambda n: f"Klant {n} BV")
    email = factory.Sequence(lambda n: f"klant{n}@example.nl")


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    provider = Provider.MKP
    remote_id = factory.Sequence(lambda n: f"inv_test{n:010d}")
    number = factory.Sequence(lambda n: f"2026-{n:05d}")
    customer = factory.SubFactory(CustomerFactory)
    customer_name = factory.LazyAttribute(lambda o: o.customer.name if o.customer else "")
    issue_date = factory.LazyFunction(lambda: timezone.localdate() - timedelta(days=10))
    due_date = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=20))
    amount = Decimal("100.00")
    status = InvoiceStatus.OPEN
    sync_state = SyncState.SYNCED
    last_seen_at = factory.LazyFunction(timezone.now)


def remote_invoice(**overrides) -> RemoteInvoice:
    values = {
        "remote_id": "inv_remote0000001",
        "number": "2026-R-001",
        "status": "open",
        "customer_remote_id": "cst_remote000001",
        "issue_date": date(2026, 11, 1),
        "due_date": date(2026, 12, 1),
        "amount": Decimal("12.95"),
        "currency": "EUR",
        "raw": {"id": overrides.get("remote_id", "inv_remote0000001")},
    }
    values.update(overrides)
    return RemoteInvoice(**values)
