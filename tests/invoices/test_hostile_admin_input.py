"""What staff can type into an address or upload, however odd, gets a plain answer, never a 500."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from invoices import validation
from invoices.models import ActionBatch, ActionBatchItem, SyncState
from invoices.selectors import batch_progress, batch_rows
from tests.factories import InvoiceFactory
from tests.invoices.helpers import pdf_bytes

pytestmark = pytest.mark.django_db
LIST = reverse("admin:invoices_invoice_changelist")


@pytest.mark.parametrize("failure", [AttributeError("no setter"), TypeError("str + int"), RecursionError()])
def test_a_pdf_the_parser_chokes_on_is_refused_as_damaged(monkeypatch, failure):
    def choke(*args, **kwargs):
        raise failure

    monkeypatch.setattr(validation, "PdfReader", choke)
    with pytest.raises(ValidationError, match=r"x\.pdf is damaged and cannot be read as a PDF\."):
        validation.check_pdf(name="x.pdf", content=pdf_bytes())


@pytest.mark.parametrize(
    "params",
    [
        {"paid_at__lte": "9999-12-31"},
        {"paid_at__gte": "0001-01-01"},
        {"due_date__gte": "0001-01-01"},
        {"customer": "²"},
        {"customer": "99999999999999999999999"},
    ],
)
def test_odd_filter_values_send_the_list_back_unfiltered(admin_client, params):
    InvoiceFactory()
    response = admin_client.get(LIST, params)
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


@pytest.mark.parametrize("after", ["²", "xyz", "-1", "99999999999999999999999"])
def test_the_batch_status_takes_only_a_row_id_to_read_on_from(admin_client, after):
    batch = ActionBatch.objects.create(kind=ActionBatch.Kind.MARK_PAID)
    ActionBatchItem.objects.create(batch=batch, invoice=InvoiceFactory(), queued=True)
    response = admin_client.get(
        reverse("admin:invoices_actionbatch_status", args=[batch.pk]), {"after": after}
    )
    assert response.status_code == 200
    assert response.json()["total"] == 1
    assert "rows" not in response.json()


def test_a_batch_page_for_no_batch_says_so(admin_client):
    response = admin_client.get("/admin/invoices/actionbatch/abc/change/")
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_a_push_batch_is_complete_once_its_failed_invoices_were_corrected_or_discarded(admin_client):
    batch = ActionBatch.objects.create(kind=ActionBatch.Kind.CREATE)
    states = [SyncState.SYNCED, SyncState.LOCAL_DRAFT, SyncState.DISCARDED]
    for state in states:
        invoice = InvoiceFactory(sync_state=state, remote_id=None if state != SyncState.SYNCED else "inv_x1")
        ActionBatchItem.objects.create(batch=batch, invoice=invoice, queued=True)

    progress = batch_progress(batch)
    assert (progress.total, progress.done, progress.failed, progress.skipped) == (3, 1, 2, 0)
    assert progress.complete
    outcomes = sorted(row["outcome"] for row in batch_rows(batch))
    assert outcomes == ["done", "failed, and discarded since", "failed, and local draft since"]
