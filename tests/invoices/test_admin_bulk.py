"""Bulk work from the invoice list: every bulk action is a batch whose page shows its progress, from
the server's figures and from the status address the page polls, until it says it is done."""

import pytest
import requests
from django.contrib.messages import get_messages
from django.urls import reverse

from integrations import errors
from invoices import formatting, selectors, tasks
from invoices.models import ActionBatch, ActionBatchItem, Invoice, InvoiceStatus, Provider, SyncState
from invoices.push import push_invoices
from invoices.selectors import BatchProgress
from invoices.services.refresh import actionbatch_refresh, invoices_bulk_refresh
from invoices.sync import MODE_FULL, refresh, sync_provider
from tests.factories import InvoiceFactory
from tests.invoices.helpers import seed

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:invoices_invoice_changelist")


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def status_of(client, batch) -> dict:
    response = client.get(reverse("admin:invoices_actionbatch_status", args=[batch.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def batch_page(client, batch) -> str:
    return client.get(reverse("admin:invoices_actionbatch_change", args=[batch.pk])).content.decode()


@pytest.fixture
def mirrored(sandbox):
    seed(sandbox, invoices=30, customers=3)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    assert sync_provider(provider=Provider.QONTO, mode=MODE_FULL).status == "succeeded"
    return sandbox


@pytest.fixture
def refresh_tasks(monkeypatch):
    """The batch ids handed to the refresh task after commit, instead of a broker."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.refresh_batch, "delay", lambda batch_id: calls.append(batch_id))
    return calls


def open_invoices(provider):
    return Invoice.objects.filter(provider=provider, status=InvoiceStatus.OPEN).order_by("pk")


def test_a_bulk_refresh_is_queued_as_a_batch_and_its_page_goes_to_done(
    admin_client, mirrored, refresh_tasks, django_capture_on_commit_callbacks
):
    mkp = open_invoices(Provider.MKP).first()
    qonto = open_invoices(Provider.QONTO).first()
    requests.post(
        f"{mirrored.admin_url}/state/qonto/{qonto.remote_id}",
        json={"status": "paid", "paid_at": "2026-11-20T10:00:00+01:00"},
        timeout=10,
    ).raise_for_status()
    requests.delete(f"{mirrored.admin_url}/state/mkp/{mkp.remote_id}", timeout=10).raise_for_status()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST, {"action": "refresh_action", "_selected_action": [mkp.pk, qonto.pk]}, follow=True
        )

    # Nothing is asked of the providers in the request: one batch, queued once.
    batch = ActionBatch.objects.get()
    assert batch.kind == ActionBatch.Kind.REFRESH
    assert refresh_tasks == [batch.pk]
    assert response.request["PATH_INFO"] == reverse("admin:invoices_actionbatch_change", args=[batch.pk])
    assert texts(response) == ["2 invoices will be refreshed from the provider in the background."]
    qonto.refresh_from_db()
    assert qonto.status == InvoiceStatus.OPEN
    page = response.content.decode()
    assert "0 of 2 done" in page
    assert 'data-complete="false"' in page
    assert "also when you leave this page" in page
    assert status_of(admin_client, batch) == {
        "total": 2,
        "done": 0,
        "failed": 0,
        "skipped": 0,
        "finished": 0,
        "complete": False,
        "text": "0 of 2 done",
    }

    # The worker's part.
    assert actionbatch_refresh(batch=batch) is None
    qonto.refresh_from_db()
    mkp.refresh_from_db()
    assert qonto.status == InvoiceStatus.PAID
    assert mkp.removed_at is not None
    assert status_of(admin_client, batch)["complete"] is True
    page = batch_page(admin_client, batch)
    assert "2 of 2 done" in page
    assert 'data-complete="true"' in page
    assert "Done: 2 succeeded, 0 failed, 0 skipped." in page
    assert "no longer exists at the provider: marked removed here" in page
    assert f'href="{CHANGELIST}">Back to the invoice list' in page


def test_a_refresh_that_fails_says_why_and_what_to_do_and_links_the_failure(
    admin_client, mirrored, refresh_tasks, settings, django_capture_on_commit_callbacks
):
    chosen = list(open_invoices(Provider.MKP)[:3])
    draft = Invoice.objects.create(
        provider=Provider.MKP, number="2026-LOCAL", sync_state=SyncState.LOCAL_DRAFT
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            CHANGELIST, {"action": "refresh_action", "_selected_action": [i.pk for i in [*chosen, draft]]}
        )
    batch = ActionBatch.objects.get()
    settings.MKP_API_KEY = "not-the-key"
    actionbatch_refresh(batch=batch)

    status = status_of(admin_client, batch)
    assert (status["done"], status["failed"], status["skipped"], status["complete"]) == (0, 3, 1, True)
    assert status["text"] == "4 of 4 done, 3 failed, 1 skipped"
    page = batch_page(admin_client, batch)
    assert 'href="#batch-failures">See the 3 failed invoices' in page
    assert "failed: MijnKlantportaal refused our API key. Ask an administrator to check MKP_API_KEY." in page
    assert "skipped: not at the provider yet" in page
    failures = page[page.index('id="batch-failure-list"') : page.index("Every invoice")]
    for invoice in chosen:
        assert reverse("admin:invoices_invoice_change", args=[invoice.pk]) in failures
    assert draft.number not in failures


def test_a_refresh_told_to_slow_down_goes_on_later_where_it_stopped(mirrored, monkeypatch, admin_user):
    chosen = list(open_invoices(Provider.MKP)[:3])
    report = invoices_bulk_refresh(invoices=chosen, actor=admin_user)
    real = refresh.refresh_invoices
    calls = []

    def limited(*, invoice_ids):
        calls.append(invoice_ids)
        if len(calls) == 2:
            raise errors.ProviderRateLimited("slow down", retry_after=7, provider="mkp", status_code=429)
        return real(invoice_ids=invoice_ids)

    monkeypatch.setattr(refresh, "refresh_invoices", limited)
    assert actionbatch_refresh(batch=report.batch) == 7
    finished = ActionBatchItem.objects.filter(batch=report.batch, finished_at__isnull=False)
    assert [item.invoice_id for item in finished] == [chosen[0].pk]

    assert actionbatch_refresh(batch=report.batch) is None
    assert [ids for ids in calls[2:]] == [[chosen[1].pk], [chosen[2].pk]]
    assert ActionBatchItem.objects.filter(batch=report.batch, finished_at=None).count() == 0


def test_bulk_retry_is_a_batch_whose_page_follows_the_pushes(admin_client, mirrored, queued):
    failed = list(open_invoices(Provider.MKP)[:2])
    for invoice in failed:
        Invoice.objects.filter(pk=invoice.pk).update(
            sync_state=SyncState.FAILED,
            pending_action="mark_paid",
            requested_paid_on="2026-11-20",
            requested_paid_at="2026-11-20T10:00:00+01:00",
            last_error="MijnKlantportaal failed.",
        )
    fine = open_invoices(Provider.MKP).exclude(pk__in=[i.pk for i in failed]).first()
    response = admin_client.post(
        CHANGELIST,
        {"action": "retry_action", "_selected_action": [*(i.pk for i in failed), fine.pk]},
        follow=True,
    )
    batch = ActionBatch.objects.get()
    assert batch.kind == ActionBatch.Kind.RETRY
    assert response.request["PATH_INFO"] == reverse("admin:invoices_actionbatch_change", args=[batch.pk])
    messages = texts(response)
    assert messages[0] == "2 invoices will be sent to the provider again in the background."
    assert messages[1] == f"1 invoice skipped ({fine} has nothing to retry.)."
    assert status_of(admin_client, batch)["text"] == "1 of 3 done, 1 skipped"

    push_invoices([i.pk for i in failed])
    status = status_of(admin_client, batch)
    assert (status["done"], status["complete"]) == (2, True)
    assert "3 of 3 done, 1 skipped" in batch_page(admin_client, batch)


def test_the_progress_text_counts_in_thousands():
    progress = BatchProgress(total=1000, done=409, failed=3, skipped=0)
    assert progress.text == "412 of 1,000 done, 3 failed"
    assert not progress.complete
    assert BatchProgress(total=2, done=1, failed=0, skipped=1).complete


def test_the_page_polls_without_any_file_from_outside(admin_client, admin_user):
    batch = ActionBatch.objects.create(kind=ActionBatch.Kind.MARK_PAID, actor=admin_user)
    page = batch_page(admin_client, batch)
    assert '<meta http-equiv="refresh"' not in page
    assert reverse("admin:invoices_actionbatch_status", args=[batch.pk]) in page
    assert "<script>" in page and "https://" not in page.split("<script>")[1]


def test_the_status_also_says_how_each_row_ended_a_page_of_rows_at_a_time(
    admin_client, admin_user, monkeypatch
):
    monkeypatch.setattr(selectors, "BATCH_ROWS_PER_POLL", 2)
    batch = ActionBatch.objects.create(kind=ActionBatch.Kind.MARK_PAID, actor=admin_user)
    invoices = [
        InvoiceFactory(sync_state=SyncState.SYNCED),
        InvoiceFactory(sync_state=SyncState.PENDING, pending_action="mark_paid"),
        InvoiceFactory(sync_state=SyncState.FAILED, pending_action="mark_paid", last_error="Refused."),
    ]
    items = [ActionBatchItem.objects.create(batch=batch, invoice=i, queued=True) for i in invoices]
    url = reverse("admin:invoices_actionbatch_status", args=[batch.pk])

    first = admin_client.get(url, {"after": 0}).json()
    assert first["text"] == "2 of 3 done, 1 failed"
    assert first["rows"] == [
        {"item": items[0].pk, "outcome": "done", "css": "done"},
        {"item": items[1].pk, "outcome": "in progress", "css": "pending"},
    ]
    assert first["next_after"] == items[1].pk
    rest = admin_client.get(url, {"after": first["next_after"]}).json()
    assert rest["rows"] == [{"item": items[2].pk, "outcome": "failed: Refused.", "css": "failed"}]
    assert rest["next_after"] is None
    assert "rows" not in admin_client.get(url).json()  # the figures alone, as before

    page = batch_page(admin_client, batch)
    for item in items:  # the rows the script updates in place
        assert f'data-item="{item.pk}"' in page


def test_the_batch_page_leads_back_through_the_action_batches(admin_client, admin_user):
    batch = ActionBatch.objects.create(kind=ActionBatch.Kind.MARK_PAID, actor=admin_user)
    page = batch_page(admin_client, batch)
    crumbs = page[page.index('class="breadcrumbs"') : page.index("</div>", page.index('class="breadcrumbs"'))]
    assert f'href="{reverse("admin:invoices_actionbatch_changelist")}">Action batches</a>' in crumbs
    assert str(batch) in crumbs and str(batch).endswith(f" at {formatting.moment(batch.created_at)}")
