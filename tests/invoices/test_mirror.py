from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from invoices.models import Invoice, InvoiceEvent, InvoiceStatus, PendingAction, Provider, SyncState
from invoices.sync.mirror import upsert_invoices
from tests.conftest import REQUIRE_SERVICES
from tests.factories import CustomerFactory, InvoiceFactory, remote_invoice

pytestmark = pytest.mark.django_db

# One source of truth for the upsert rules: on PostgreSQL every case runs against the set-based
# merge and against the ORM path beside it (the one SQLite uses), which must agree.
PATHS = ["set-based merge", "ORM"] if "postgresql" in settings.DATABASES["default"]["ENGINE"] else ["ORM"]


@pytest.fixture(autouse=True, params=PATHS)
def upsert_path(request, monkeypatch):
    if request.param == "ORM":
        from invoices.sync import mirror

        monkeypatch.setattr(mirror, "_upsert_set_based", mirror._upsert_with_orm)
    return request.param


def page(n, start=0, **overrides):
    return [
        remote_invoice(
            **{"remote_id": f"inv_p{i:012d}", "number": f"N-{i}", "amount": Decimal("10.00") + i, **overrides}
        )
        for i in range(start, start + n)
    ]


def test_new_invoices_are_created_and_linked_to_known_customers():
    customer = CustomerFactory(remote_id="cst_remote000001")
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(3), fetched_at=timezone.now())
    assert (counts.created, counts.updated, counts.unchanged) == (3, 0, 0)
    invoice = Invoice.objects.get(remote_id="inv_p000000000001")
    assert invoice.amount == Decimal("11.00")
    assert invoice.customer == customer
    assert invoice.sync_state == SyncState.SYNCED


def test_unchanged_pages_write_nothing(django_assert_num_queries):
    upsert_invoices(provider=Provider.MKP, remotes=page(15), fetched_at=timezone.now())
    before = list(Invoice.objects.order_by("pk").values_list("pk", "updated_at"))
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(15), fetched_at=timezone.now())
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 15)
    assert list(Invoice.objects.order_by("pk").values_list("pk", "updated_at")) == before
    assert not InvoiceEvent.objects.exists()


def test_queries_per_page_do_not_grow_with_the_page():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(remotes):
        with CaptureQueriesContext(connection) as ctx:
            upsert_invoices(provider=Provider.MKP, remotes=remotes, fetched_at=timezone.now())
        return len(ctx.captured_queries)

    # SQLite caps the parameters of one statement, so only PostgreSQL is held to the 100-row page.
    large = 100 if connection.vendor == "postgresql" else 15
    paid = {"status": "paid", "paid_at": timezone.now()}
    assert queries_for(page(2, start=0)) == queries_for(page(large, start=1000))
    assert queries_for(page(2, start=0, **paid)) == queries_for(page(large, start=1000, **paid))


def test_a_remote_change_is_applied_and_recorded():
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    paid_at = timezone.now().replace(microsecond=0)
    counts = upsert_invoices(
        provider=Provider.MKP, remotes=page(1, status="paid", paid_at=paid_at), fetched_at=timezone.now()
    )
    assert counts.updated == 1
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_at == paid_at
    event = invoice.events.get()
    assert event.kind == InvoiceEvent.Kind.CHANGED_BY_SYNC
    assert event.changes["status"] == ["open", "paid"]


def test_local_bookkeeping_survives_a_pull():
    invoice = InvoiceFactory(remote_id="inv_p000000000000", number="N-0", last_error="old", attempts=3)
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    invoice.refresh_from_db()
    assert invoice.attempts == 3
    assert invoice.last_error == "old"
    assert invoice.amount == Decimal("10.00")


def test_a_pending_payment_is_not_undone_by_an_older_remote_copy():
    invoice = InvoiceFactory(
        remote_id="inv_p000000000000",
        number="N-0",
        sync_state=SyncState.PENDING,
        pending_action=PendingAction.MARK_PAID,
    )
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    assert counts.skipped == 1
    invoice.refresh_from_db()
    assert invoice.pending_action == PendingAction.MARK_PAID


def test_a_page_fetched_before_our_push_does_not_overwrite_it():
    fetched_at = timezone.now() - timedelta(seconds=5)
    invoice = InvoiceFactory(
        remote_id="inv_p000000000000",
        number="N-0",
        status=InvoiceStatus.PAID,
        paid_at=timezone.now(),
        pushed_at=timezone.now(),
    )
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=fetched_at)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated():
    local = InvoiceFactory(
        remote_id=None,
        number="N-0",
        sync_state=SyncState.PENDING,
        pending_action=PendingAction.CREATE,
        outcome_unknown=True,
    )
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    assert counts.created == 0
    local.refresh_from_db()
    assert local.remote_id == "inv_p000000000000"
    assert local.sync_state == SyncState.SYNCED
    assert local.pending_action == ""
    assert Invoice.objects.count() == 1


def test_a_push_answer_absorbs_the_row_a_sync_mirrored_meanwhile():
    from invoices.push import _record_success

    ours = InvoiceFactory(
        remote_id=None,
        number="",
        provider=Provider.QONTO,
        sync_state=SyncState.SENDING,
        pending_action=PendingAction.CREATE,
    )
    upsert_invoices(provider=Provider.QONTO, remotes=page(1), fetched_at=timezone.now())
    twin = Invoice.objects.exclude(pk=ours.pk).get()
    InvoiceEvent.objects.create(invoice=twin, kind=InvoiceEvent.Kind.CHANGED_BY_SYNC)
    _record_success(ours, page(1)[0])
    ours.refresh_from_db()
    assert ours.remote_id == "inv_p000000000000"
    assert not Invoice.objects.filter(pk=twin.pk).exists()
    assert ours.events.filter(kind=InvoiceEvent.Kind.CHANGED_BY_SYNC).exists()


def written_versions(ids) -> dict:
    """What changes whenever a row is written: where its row version lives on PostgreSQL; its
    stamps and a mirrored value elsewhere."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, ctid::text FROM invoices_invoice WHERE id = ANY(%s)", [list(ids)])
            return dict(cursor.fetchall())
    rows = Invoice.objects.filter(pk__in=ids).values_list("pk", "last_seen_at", "last_synced_at", "amount")
    return {pk: rest for pk, *rest in rows}


def test_an_unchanged_page_only_stamps_last_seen_at():
    upsert_invoices(provider=Provider.MKP, remotes=page(3), fetched_at=timezone.now())
    before = timezone.now()
    upsert_invoices(provider=Provider.MKP, remotes=page(3), fetched_at=timezone.now())
    assert all(seen >= before for seen in Invoice.objects.values_list("last_seen_at", flat=True))


def test_with_a_scan_an_unchanged_page_writes_nothing_and_the_scan_remembers_it():
    from invoices.sync.mirror import Scan

    upsert_invoices(provider=Provider.MKP, remotes=page(15), fetched_at=timezone.now())
    ids = list(Invoice.objects.values_list("pk", flat=True))
    before = written_versions(ids)
    scan = Scan()
    remotes = page(14) + page(1, start=14, amount=Decimal("99.00"))  # the last one changed
    counts = upsert_invoices(provider=Provider.MKP, remotes=remotes, fetched_at=timezone.now(), scan=scan)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 14)
    after = written_versions(ids)
    changed = Invoice.objects.get(remote_id="inv_p000000000014")
    assert [pk for pk in ids if after[pk] != before[pk]] == [changed.pk]
    assert sorted(scan.ids) == sorted(set(ids) - {changed.pk})
    # What a complete scan did not see is what is left once its sightings are taken out.
    gone = InvoiceFactory(
        remote_id="inv_gone", number="N-gone", last_seen_at=scan.started_at - timedelta(hours=1)
    )
    unseen = scan.unseen(Invoice.objects.filter(last_seen_at__lt=scan.started_at))
    assert list(unseen) == [gone]
    # Handing the sightings over to a later run writes them after all, once.
    assert scan.stamp(now=timezone.now()) == 14
    assert not Invoice.objects.filter(last_seen_at__lt=scan.started_at).exclude(pk=gone.pk).exists()


def test_a_scan_also_remembers_the_rows_it_skipped():
    from invoices.sync.mirror import Scan

    pending = InvoiceFactory(
        remote_id="inv_p000000000000",
        number="N-0",
        pending_action=PendingAction.MARK_PAID,
        sync_state=SyncState.PENDING,
    )
    scan = Scan()
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now(), scan=scan)
    assert counts.skipped == 1
    assert list(scan.ids) == [pending.pk]


def test_an_invoice_marked_removed_is_restored_when_the_provider_lists_it_again():
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    Invoice.objects.update(removed_at=timezone.now() - timedelta(days=1))
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    assert counts.updated == 1
    invoice = Invoice.objects.get()
    assert invoice.removed_at is None
    event = invoice.events.get()
    assert (event.kind, event.message) == (InvoiceEvent.Kind.CHANGED_BY_SYNC, "Listed by the provider again.")


def test_changes_are_described_in_the_same_words_on_every_database():
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    paid_at = timezone.now().replace(microsecond=0)
    upsert_invoices(
        provider=Provider.MKP,
        remotes=page(1, amount=Decimal("12.50"), status="paid", paid_at=paid_at, raw={"v": 2}),
        fetched_at=timezone.now(),
    )
    changes = Invoice.objects.get().events.get().changes
    assert changes == {
        "amount": ["10.00", "12.50"],
        "status": ["open", "paid"],
        "paid_at": [None, str(paid_at)],
    }


def test_a_changed_raw_payload_alone_is_written_without_describing_it():
    upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1, raw={"v": 2}), fetched_at=timezone.now())
    assert counts.updated == 1
    invoice = Invoice.objects.get()
    assert invoice.raw == {"v": 2}
    assert invoice.events.get().changes == {}


def test_one_local_create_is_adopted_per_number_the_oldest_first():
    def local():
        return InvoiceFactory(
            remote_id=None,
            number="N-0",
            sync_state=SyncState.PENDING,
            pending_action=PendingAction.CREATE,
            outcome_unknown=True,
        )

    first, second = local(), local()
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    assert (counts.created, counts.updated) == (0, 1)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.remote_id == "inv_p000000000000"
    assert first.events.get().kind == InvoiceEvent.Kind.CREATED_REMOTELY
    assert (second.remote_id, second.pending_action) == (None, PendingAction.CREATE)


def test_a_local_create_being_sent_is_left_to_its_sender():
    sending = InvoiceFactory(
        remote_id=None,
        number="N-0",
        sync_state=SyncState.SENDING,
        pending_action=PendingAction.CREATE,
        outcome_unknown=True,
    )
    counts = upsert_invoices(provider=Provider.MKP, remotes=page(1), fetched_at=timezone.now())
    assert counts.created == 1
    sending.refresh_from_db()
    assert sending.remote_id is None


def test_a_remote_id_listed_twice_is_stored_once_with_its_last_copy():
    remotes = page(1) + page(1, amount=Decimal("42.00"))
    counts = upsert_invoices(provider=Provider.MKP, remotes=remotes, fetched_at=timezone.now())
    assert counts.created == 1
    assert Invoice.objects.get().amount == Decimal("42.00")


def test_new_rows_get_the_model_defaults():
    upsert_invoices(provider=Provider.QONTO, remotes=page(1), fetched_at=timezone.now())
    invoice = Invoice.objects.get()
    assert (invoice.provider, invoice.attempts, invoice.pending_action, invoice.outcome_unknown) == (
        Provider.QONTO,
        0,
        "",
        False,
    )
    assert invoice.created_at is not None
    assert invoice.last_seen_at == invoice.last_synced_at


# Pulling pages: the sync's loop over a provider's list ------------------------------------------
class Recorder:
    """Stands in for the sync's run recorder: one SyncRun row."""

    def __init__(self, provider=Provider.MKP):
        from invoices.models import SyncRun

        self.run = SyncRun.objects.create(provider=provider, kind="full")
        self.client = type("Client", (), {"request_count": 0})()

    def add(self, counts):
        from invoices.sync.pages import RunRecorder

        RunRecorder(self.run, self.client).add(counts)


def pages_of(*sizes, fail_after=None):
    from integrations import errors
    from integrations.types import Page

    start = 0
    for number, size in enumerate(sizes, start=1):
        if fail_after is not None and number > fail_after:
            raise errors.ProviderServerError("The provider had an internal error.", provider="mkp")
        yield Page(items=page(size, start=start), number=number, next_page=number + 1)
        start += size


def test_pull_pages_writes_groups_of_pages_and_counts_every_page():
    from invoices.sync.pages import pull_pages

    recorder = Recorder()
    last = pull_pages(pages_of(15, 15, 15, 3), Provider.MKP, recorder, lambda: True)
    assert last.number == 4
    recorder.run.refresh_from_db()
    assert (recorder.run.pages, recorder.run.created) == (4, 48)
    assert Invoice.objects.count() == 48


def test_pull_pages_keeps_the_pages_fetched_before_a_failure():
    from integrations import errors
    from invoices.sync.pages import pull_pages

    recorder = Recorder()
    with pytest.raises(errors.ProviderServerError):
        pull_pages(pages_of(15, 15, 15, fail_after=2), Provider.MKP, recorder, lambda: True)
    assert Invoice.objects.count() == 30
    recorder.run.refresh_from_db()
    assert recorder.run.pages == 2


def test_pull_pages_counts_a_group_as_fetched_when_its_first_request_started():
    from invoices.sync.pages import pull_pages

    upsert_invoices(provider=Provider.MKP, remotes=page(2), fetched_at=timezone.now())
    started = timezone.now()
    Invoice.objects.filter(remote_id="inv_p000000000001").update(pushed_at=started + timedelta(seconds=0.2))

    def slow_pages():
        import time

        from integrations.types import Page

        yield Page(items=page(1, amount=Decimal("1.00")), number=1, next_page=2)
        time.sleep(0.3)  # the second request starts after our push
        yield Page(items=page(1, start=1, amount=Decimal("1.00")), number=2, next_page=None)

    pull_pages(slow_pages(), Provider.MKP, Recorder(), lambda: True)
    # Pushed after the group's first request started: our newer state stays.
    assert Invoice.objects.get(remote_id="inv_p000000000001").amount == Decimal("11.00")
    assert Invoice.objects.get(remote_id="inv_p000000000000").amount == Decimal("1.00")


# The prefetcher the pages go through --------------------------------------------------------------
def test_prefetched_keeps_the_order_and_stays_within_its_depth():
    import threading

    from invoices.sync.prefetch import prefetched

    pulled = []
    lock = threading.Lock()

    def source():
        for n in range(6):
            with lock:
                pulled.append(n)
            yield n

    seen = []
    for item in prefetched(source(), depth=1):
        import time

        time.sleep(0.02)  # the background thread has all the time it wants to run ahead
        with lock:
            assert len(pulled) <= item + 2, "one item in hand and at most one fetched ahead"
        seen.append(item)
    assert seen == list(range(6))


def test_prefetched_raises_the_error_where_it_happened():
    from invoices.sync.prefetch import prefetched

    def source():
        yield 1
        yield 2
        raise ValueError("page 3 failed")

    seen = []
    with pytest.raises(ValueError, match="page 3 failed"):
        for item in prefetched(source()):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetched_stops_and_closes_the_source_when_the_loop_ends_early():
    from invoices.sync.prefetch import prefetched

    closed, pulled = [], []

    def source():
        try:
            for n in range(100):
                pulled.append(n)
                yield n
        finally:
            closed.append(True)

    for item in prefetched(source(), depth=2):
        if item == 1:
            break
    assert closed == [True]
    assert len(pulled) <= 4


def test_a_failed_change_does_not_freeze_the_mirror():
    invoice = InvoiceFactory(
        remote_id="inv_p000000000000",
        number="N-0",
        sync_state=SyncState.FAILED,
        pending_action=PendingAction.MARK_PAID,
        last_error="refused",
    )
    paid_at = timezone.now().replace(microsecond=0)
    upsert_invoices(
        provider=Provider.MKP, remotes=page(1, status="paid", paid_at=paid_at), fetched_at=timezone.now()
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID, "someone else's payment is mirrored"
    assert invoice.sync_state == SyncState.FAILED, "our bookkeeping is left for staff"


def test_raw_payloads_are_compressed_with_lz4_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES=1 but this run has no PostgreSQL (DATABASE_URL)")
        pytest.skip("a PostgreSQL setting")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute WHERE attname = 'raw' AND attrelid = ANY("
            "ARRAY['invoices_invoice'::regclass, 'invoices_customer'::regclass])"
        )
        assert [row[0] for row in cursor.fetchall()] == ["l", "l"]
