"""Invoices that arrived before their customer are linked once it is there, without waiting on rows
another run is writing (a customer run and an invoice run of one provider run side by side)."""

import threading

import pytest
from django.db import connection, connections, transaction

from invoices.models import Invoice, Provider
from invoices.sync.mirror import link_orphan_invoices
from tests.conftest import REQUIRE_SERVICES
from tests.factories import CustomerFactory, InvoiceFactory


def orphans(count: int, customer_remote_id: str) -> list[Invoice]:
    return InvoiceFactory.create_batch(count, customer=None, customer_remote_id=customer_remote_id)


@pytest.mark.django_db
def test_orphans_are_linked_to_the_customer_that_arrived_later():
    lonely = orphans(3, "cst_later")
    unknown = orphans(1, "cst_never")[0]
    customer = CustomerFactory(provider=Provider.MKP, remote_id="cst_later")

    assert link_orphan_invoices(Provider.MKP) == 3
    assert {i.customer_id for i in Invoice.objects.filter(pk__in=[i.pk for i in lonely])} == {customer.pk}
    unknown.refresh_from_db()
    assert unknown.customer_id is None
    assert link_orphan_invoices(Provider.MKP) == 0


@pytest.mark.django_db(transaction=True)
def test_a_row_another_transaction_holds_is_skipped_without_waiting_and_linked_later():
    if connection.vendor != "postgresql":
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES=1 but this run has no PostgreSQL (DATABASE_URL)")
        pytest.skip("row locks are PostgreSQL's")
    held, *free = orphans(3, "cst_later")
    customer = CustomerFactory(provider=Provider.MKP, remote_id="cst_later")
    locked, release = threading.Event(), threading.Event()

    def writer():
        # Another run's transaction that holds the row, as a group of the invoice merge does.
        try:
            with transaction.atomic():
                Invoice.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait would fail the test, not hang it
        assert link_orphan_invoices(Provider.MKP) == 2
    finally:
        release.set()
        thread.join()
    assert set(Invoice.objects.filter(customer=customer).values_list("pk", flat=True)) == {i.pk for i in free}
    assert link_orphan_invoices(Provider.MKP) == 1
    held.refresh_from_db()
    assert held.customer_id == customer.pk
