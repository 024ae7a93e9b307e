"""Creating invoices from the admin: the upload form, drafts, the bulk action, provider refusals."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from invoices.models import ActionBatch, Invoice, InvoiceEvent, Provider, SyncState
from tests.invoices.helpers import mirrored_mkp_customer, pdf_bytes, remote_state, set_config, set_faults

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:invoices_invoice_add")


def upload(admin_client, customer, *, number="2026-100", amount="12.95", draft=False, content=None, **extra):
    data = {
        "pdf": SimpleUploadedFile(f"{number}.pdf", content or pdf_bytes(number), "application/pdf"),
        "customer": customer.pk,
        "number": number,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "amount": amount,
        "send_notification": "on",
        **extra,
    }
    data["_save_draft" if draft else "_send"] = "1"
    return admin_client.post(ADD_URL, data, follow=True)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_upload_creates_the_invoice_at_mijnklantportaal(admin_client, sandbox, admin_user):
    customer = mirrored_mkp_customer(sandbox)
    response = upload(admin_client, customer)
    invoice = Invoice.objects.get(number="2026-100")
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.remote_id.startswith("inv_")
    assert invoice.amount == Decimal("12.95")
    assert invoice.pdf.read().startswith(b"%PDF")
    assert any("confirmed by MijnKlantportaal" in m for m in texts(response))
    (remote,) = remote_state(sandbox, "mkp")
    assert remote["id"] == invoice.remote_id
    assert remote["number"] == "2026-100"
    kinds = list(invoice.events.values_list("kind", "actor"))
    assert (InvoiceEvent.Kind.CREATED_REMOTELY, admin_user.pk) in kinds
    assert (InvoiceEvent.Kind.CREATE_REQUESTED, admin_user.pk) in kinds


def test_the_upload_page_shows_the_customers_and_both_providers(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    page = admin_client.get(ADD_URL).content.decode()
    assert customer.name in page
    assert "?provider=qonto" in page
    assert 'name="pdfs"' in admin_client.get(ADD_URL + "?provider=qonto").content.decode()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"issue_date": "2024-04-31"}, "2024-04-31 is not a real date."),
        ({"amount": "12,95"}, "Use a dot for decimals"),
        ({"amount": "-1.00"}, "The amount cannot be negative."),
        ({"content": b"MZ\x90\x00 an executable renamed to pdf"}, "is not a PDF file."),
    ],
)
def test_bad_input_is_refused_before_any_request(admin_client, sandbox, override, message):
    customer = mirrored_mkp_customer(sandbox)
    response = upload(admin_client, customer, **override)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Invoice.objects.filter(provider=Provider.MKP).exists()
    assert remote_state(sandbox, "mkp") == []


def test_a_number_already_used_is_refused(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    upload(admin_client, customer)
    response = upload(admin_client, customer)
    assert "Invoice number 2026-100 is already used." in response.content.decode()
    assert len(remote_state(sandbox, "mkp")) == 1


def test_a_license_limit_is_explained_and_the_upload_kept(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    set_config(sandbox, mkp_license_limit=0)
    response = upload(admin_client, customer)
    invoice = Invoice.objects.get(number="2026-100")
    assert invoice.sync_state == SyncState.FAILED
    assert invoice.pdf.read().startswith(b"%PDF")
    assert "license" in invoice.last_error
    assert any("licence" in m and "Your upload is kept" in m for m in texts(response))
    # Once the licence allows it, sending again needs no retyping.
    set_config(sandbox, mkp_license_limit=None)
    response = admin_client.post(reverse("admin:invoices_invoice_send", args=[invoice.pk]), follow=True)
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.SYNCED
    assert len(remote_state(sandbox, "mkp")) == 1


def test_a_bad_api_key_is_named_in_plain_words(admin_client, sandbox, settings):
    customer = mirrored_mkp_customer(sandbox)
    settings.MKP_API_KEY = "wrong-key-123456"
    response = upload(admin_client, customer)
    invoice = Invoice.objects.get(number="2026-100")
    assert invoice.sync_state == SyncState.FAILED
    joined = " ".join(texts(response))
    assert "MijnKlantportaal refused our API key. Ask an administrator to check MKP_API_KEY." in joined
    assert "wrong-key-123456" not in joined
    assert "wrong-key-123456" not in invoice.last_error


def test_a_timeout_never_creates_a_second_invoice(admin_client, sandbox, short_read_timeout):
    customer = mirrored_mkp_customer(sandbox)
    # The create reaches MijnKlantportaal, but the answer never arrives in time.
    set_faults(sandbox, {"timeout": 1.0}, after_share=1.0, methods=["POST"], timeout_seconds=3.0)
    response = upload(admin_client, customer)
    invoice = Invoice.objects.get(number="2026-100")
    assert invoice.sync_state == SyncState.PENDING
    assert invoice.outcome_unknown
    assert any("sent again automatically" in m for m in texts(response))
    set_faults(sandbox, {})
    # The retry first looks the number up at the provider and adopts what it finds.
    Invoice.objects.filter(pk=invoice.pk).update(next_attempt_at=None)
    from invoices.push import push_invoices

    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.SYNCED
    remote = remote_state(sandbox, "mkp")
    assert [r["id"] for r in remote] == [invoice.remote_id]


def test_save_as_draft_then_bulk_create(admin_client, sandbox, queued, django_capture_on_commit_callbacks):
    customer = mirrored_mkp_customer(sandbox)
    upload(admin_client, customer, number="2026-201", draft=True)
    upload(admin_client, customer, number="2026-202", draft=True)
    synced = upload(admin_client, customer, number="2026-203")
    assert synced.status_code == 200
    assert Invoice.objects.filter(sync_state=SyncState.LOCAL_DRAFT).count() == 2
    assert len(remote_state(sandbox, "mkp")) == 1
    queued.clear()
    pks = list(Invoice.objects.order_by("pk").values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:invoices_invoice_changelist"),
            {"action": "create_at_provider_action", "_selected_action": pks},
            follow=True,
        )
    joined = " ".join(texts(response))
    assert "2 invoices will be created at the provider in the background." in joined
    assert "1 invoice skipped" in joined and "already at MijnKlantportaal" in joined
    drafts = sorted(Invoice.objects.filter(number__in=["2026-201", "2026-202"]).values_list("pk", flat=True))
    assert sorted(pk for call in queued for pk in call) == drafts
    batch = ActionBatch.objects.get()
    assert "skipped: 2026-203 is already at MijnKlantportaal." in response.content.decode()
    assert batch.items.filter(queued=True).count() == 2


def test_qonto_upload_imports_many_files_in_batches_of_five(admin_client, sandbox):
    files = [
        SimpleUploadedFile(f"Q-{i}.pdf", pdf_bytes(f"Q-{i}", f"{100 + i}.50"), "application/pdf")
        for i in range(7)
    ]
    files.append(SimpleUploadedFile("notes.pdf", b"not a pdf", "application/pdf"))
    response = admin_client.post(ADD_URL + "?provider=qonto", {"pdfs": files, "_send": "1"})
    assert "notes.pdf is not a PDF file." in response.content.decode()
    assert not Invoice.objects.exists(), "one bad file stops the form before anything is created"
    files = [
        SimpleUploadedFile(f"Q-{i}.pdf", pdf_bytes(f"Q-{i}", f"{100 + i}.50"), "application/pdf")
        for i in range(7)
    ]
    response = admin_client.post(ADD_URL + "?provider=qonto", {"pdfs": files, "_send": "1"})
    page = response.content.decode()
    assert page.count("confirmed by Qonto") == 7
    invoices = Invoice.objects.filter(provider=Provider.QONTO)
    assert invoices.filter(sync_state=SyncState.SYNCED).count() == 7
    assert sorted(invoices.values_list("number", flat=True)) == [f"Q-{i}" for i in range(7)]
    assert invoices.get(number="Q-3").amount == Decimal("103.50")
    assert len(remote_state(sandbox, "qonto")) == 7
    stats = __import__("requests").get(f"{sandbox.admin_url}/stats", timeout=10).json()
    bulk_calls = sum(n for route, n in stats["requests"]["by_route"].items() if "bulk" in route)
    assert bulk_calls == 2


def test_an_upload_with_a_future_paid_at_is_refused(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    tomorrow = date.today() + timedelta(days=2)
    response = upload(admin_client, customer, paid_at_0=tomorrow.isoformat(), paid_at_1="10:00:00")
    assert "The payment moment cannot be in the future." in response.content.decode()
    assert not Invoice.objects.exists()
