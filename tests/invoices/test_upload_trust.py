"""Uploads staff can trust: what Qonto read per file, the same file twice, a file imported
before, an amount of 0.00, and correcting or discarding an upload that never reached its provider."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from invoices.models import Customer, Invoice, InvoiceEvent, Provider, SyncState
from invoices.services import intake
from tests.invoices.helpers import mirrored_mkp_customer, pdf_bytes, remote_state

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:invoices_invoice_add")
QONTO_ADD_URL = ADD_URL + "?provider=qonto"


def pdf(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "application/pdf")


def stored_files(settings) -> list[Path]:
    media = Path(settings.MEDIA_ROOT)
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def mkp_upload(client, customer, *, number="2026-100", amount="12.95", draft=False, **extra):
    data = {
        "pdf": pdf(f"{number}.pdf", pdf_bytes(number)),
        "customer": customer.pk,
        "number": number,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "amount": amount,
        **extra,
    }
    data["_save_draft" if draft else "_send"] = "1"
    return client.post(ADD_URL, data, follow=True)


def url(name: str, invoice: Invoice) -> str:
    return reverse(f"admin:invoices_invoice_{name}", args=[invoice.pk])


# What Qonto read ---------------------------------------------------------------------------------
def test_a_qonto_import_shows_what_qonto_read_from_each_file_and_flags_zero(admin_client, sandbox):
    files = [
        pdf("first.pdf", pdf_bytes("Q-1", "12.95")),
        pdf("nothing.pdf", pdf_bytes("Q-2", "0.00")),
        pdf("third.pdf", pdf_bytes("Q-3", "1397.19")),
    ]
    page = admin_client.post(QONTO_ADD_URL, {"pdfs": files, "_send": "1"}).content.decode()
    rows = page.split('<tr class="result-')[1:]
    assert len(rows) == 3
    first, zero, third = rows
    assert "first.pdf" in first and "Q-1" in first and "EUR 12.95" in first and "1 Nov 2026" in first
    assert "2026-11-01" not in page
    assert "EUR 1,397.19" in third
    assert "Q-2" in zero and "EUR 0.00" in zero
    assert "Qonto read EUR 0.00 from this file: check the invoice at Qonto" in zero
    assert page.count("Qonto read EUR 0.00") == 1
    q1 = Invoice.objects.get(number="Q-1")
    assert url("change", q1) in first
    assert Invoice.objects.get(number="Q-2").amount == Decimal("0.00")


def test_a_qonto_draft_shows_nothing_read_yet(admin_client, sandbox):
    page = admin_client.post(
        QONTO_ADD_URL, {"pdfs": [pdf("later.pdf", pdf_bytes("Q-9"))], "_save_draft": "1"}
    ).content.decode()
    assert "saved as a local draft." in page
    assert "Qonto read EUR" not in page
    assert remote_state(sandbox, "qonto") == []


# The same file twice -----------------------------------------------------------------------------
def test_the_same_file_twice_in_one_upload_is_imported_once(admin_client, sandbox, settings):
    same = pdf_bytes("Q-7", "70.00")
    files = [pdf("a.pdf", same), pdf("b.pdf", same), pdf("other.pdf", pdf_bytes("Q-8"))]
    response = admin_client.post(QONTO_ADD_URL, {"pdfs": files, "_send": "1"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "b.pdf is the same file as a.pdf in this upload: it was imported once." in page
    assert Invoice.objects.filter(number="Q-7").count() == 1
    repeated = next(row for row in page.split('<tr class="result-')[1:] if "b.pdf" in row)
    assert url("change", Invoice.objects.get(number="Q-7")) in repeated  # where the file went
    assert Invoice.objects.count() == 2
    assert len(remote_state(sandbox, "qonto")) == 2
    kept = sorted(Path(settings.MEDIA_ROOT, i.pdf.name) for i in Invoice.objects.all())
    assert stored_files(settings) == kept, "no file on disk without its invoice"


def test_a_file_imported_before_says_where_it_went(admin_client, sandbox, settings):
    content = pdf_bytes("2026-0042", "42.00")
    admin_client.post(QONTO_ADD_URL, {"pdfs": [pdf("march.pdf", content)], "_send": "1"})
    invoice = Invoice.objects.get()
    files_before = stored_files(settings)
    page = admin_client.post(
        QONTO_ADD_URL, {"pdfs": [pdf("march-copy.pdf", content)], "_send": "1"}
    ).content.decode()
    assert "march-copy.pdf was already imported as invoice 2026-0042: nothing was sent again." in page
    assert url("change", invoice) in page
    assert Invoice.objects.count() == 1
    assert stored_files(settings) == files_before
    assert len(remote_state(sandbox, "qonto")) == 1


def test_a_file_uploaded_as_a_draft_before_points_to_the_draft(admin_client, sandbox):
    content = pdf_bytes("Q-5")
    admin_client.post(QONTO_ADD_URL, {"pdfs": [pdf("one.pdf", content)], "_save_draft": "1"})
    draft = Invoice.objects.get()
    page = admin_client.post(
        QONTO_ADD_URL, {"pdfs": [pdf("two.pdf", content)], "_send": "1"}
    ).content.decode()
    assert "two.pdf is already uploaded as the upload one.pdf, not at Qonto yet" in page
    assert url("change", draft) in page
    assert remote_state(sandbox, "qonto") == []


def test_two_uploads_of_one_file_that_cross_end_as_one_invoice_and_one_file(
    sandbox, settings, admin_user, django_capture_on_commit_callbacks
):
    """Two staff sending the same file at the same moment: both rows exist before either is sent."""
    content = pdf_bytes("Q-11")
    first = intake.invoice_create_draft(
        provider=Provider.QONTO, pdf_name="mine.pdf", pdf_content=content, actor=admin_user
    )
    Invoice.objects.filter(pk=first.pk).update(pdf_sha256="")  # not seen yet by the second upload
    second = intake.invoice_create_draft(
        provider=Provider.QONTO, pdf_name="yours.pdf", pdf_content=content, actor=admin_user
    )
    Invoice.objects.filter(pk=first.pk).update(pdf_sha256=second.pdf_sha256)
    first.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        sent = intake.invoices_create_and_send(invoices=[first, second], actor=admin_user)
    (kept,) = Invoice.objects.all()
    assert kept.number == "Q-11" and kept.remote_id
    assert [s.invoice.pk for s in sent] == [kept.pk, kept.pk]
    assert "imported once, as invoice Q-11" in sent[0].text
    assert stored_files(settings) == [Path(settings.MEDIA_ROOT, kept.pdf.name)]
    assert len(remote_state(sandbox, "qonto")) == 1


# An amount of 0.00 at MijnKlantportaal -----------------------------------------------------------
def test_a_mijnklantportaal_amount_of_zero_asks_for_a_confirmation(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    assert 'name="zero_amount_confirmed"' not in mkp_upload(admin_client, customer).content.decode()
    page = mkp_upload(admin_client, customer, number="2026-0", amount="0.00").content.decode()
    assert "The amount is 0.00. If that is right, tick “Yes, the amount is 0.00”" in page
    assert 'name="zero_amount_confirmed"' in page
    assert not Invoice.objects.filter(number="2026-0").exists()
    assert len(remote_state(sandbox, "mkp")) == 1
    response = mkp_upload(admin_client, customer, number="2026-0", amount="0.00", zero_amount_confirmed="on")
    invoice = Invoice.objects.get(number="2026-0")
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.amount == Decimal("0.00")
    assert any("confirmed by MijnKlantportaal" in m for m in texts(response))


# Correcting ------------------------------------------------------------------------------------
def test_a_failed_upload_is_corrected_and_reaches_the_provider_once(admin_client, sandbox, admin_user):
    known = mirrored_mkp_customer(sandbox)
    unknown = Customer.objects.create(provider=Provider.MKP, remote_id="cst_gone", name="Gone BV")
    response = mkp_upload(admin_client, unknown, number="2026-300")
    invoice = Invoice.objects.get(number="2026-300")
    assert invoice.sync_state == SyncState.FAILED
    joined = " ".join(texts(response))
    assert "2026-300: not done." in joined and "Correct and send again" in joined
    page = response.content.decode()
    assert url("correct", invoice) in page and url("discard", invoice) in page

    form = admin_client.get(url("correct", invoice)).content.decode()
    assert 'value="2026-300"' in form and 'value="12.95"' in form
    assert invoice.last_error in form
    response = admin_client.post(
        url("correct", invoice),
        {
            "customer": known.pk,
            "number": "2026-300",
            "issue_date": "2026-11-01",
            "due_date": "2026-12-01",
            "amount": "13.95",
            "_send": "1",
        },
        follow=True,
    )
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.amount == Decimal("13.95")
    assert any("2026-300: confirmed by MijnKlantportaal." in m for m in texts(response))
    (remote,) = remote_state(sandbox, "mkp")
    assert remote["id"] == invoice.remote_id
    corrected = invoice.events.get(kind=InvoiceEvent.Kind.CORRECTED)
    assert corrected.actor == admin_user
    assert corrected.changes["customer"] == ["Gone BV", known.name]
    assert corrected.changes["amount"] == ["12.95", "13.95"]
    kinds = set(invoice.events.values_list("kind", flat=True))
    assert {InvoiceEvent.Kind.PUSH_FAILED, InvoiceEvent.Kind.CREATED_REMOTELY} <= kinds
    # At the provider now: no more correcting.
    assert admin_client.get(url("correct", invoice)).status_code == 302
    assert url("correct", invoice) not in admin_client.get(url("change", invoice)).content.decode()


def test_a_failed_qonto_import_gets_a_new_pdf(
    admin_client, sandbox, settings, django_capture_on_commit_callbacks
):
    # Qonto wants "%PDF" as the very first bytes; this file starts with a blank line.
    refused = b"\n" + pdf_bytes("Q-20")
    page = admin_client.post(
        QONTO_ADD_URL, {"pdfs": [pdf("scan.pdf", refused)], "_send": "1"}
    ).content.decode()
    invoice = Invoice.objects.get()
    assert invoice.sync_state == SyncState.FAILED
    assert "Correct and send again" in page and url("correct", invoice) in page
    old_file = Path(settings.MEDIA_ROOT, invoice.pdf.name)
    assert old_file.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url("correct", invoice),
            {"pdf": pdf("scan-fixed.pdf", pdf_bytes("Q-20")), "_send": "1"},
            follow=True,
        )
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.SYNCED, texts(response)
    assert invoice.number == "Q-20"
    assert invoice.pdf_name == "scan-fixed.pdf"
    assert len(remote_state(sandbox, "qonto")) == 1
    assert not old_file.exists()
    assert stored_files(settings) == [Path(settings.MEDIA_ROOT, invoice.pdf.name)]
    change = invoice.events.get(kind=InvoiceEvent.Kind.CORRECTED).changes["pdf"]
    assert change[0].startswith("scan.pdf") and change[1].startswith("scan-fixed.pdf")


def test_a_correction_is_checked_like_an_upload(admin_client, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    mkp_upload(admin_client, customer, number="2026-400")
    mkp_upload(admin_client, customer, number="2026-401", draft=True)
    draft = Invoice.objects.get(number="2026-401")
    data = {"customer": customer.pk, "number": "2026-400", "issue_date": "2026-11-01", "amount": "0.00"}
    page = admin_client.post(url("correct", draft), {**data, "_save": "1"}).content.decode()
    assert "Invoice number 2026-400 is already used." in page
    assert "The amount is 0.00." in page
    draft.refresh_from_db()
    assert draft.number == "2026-401" and draft.amount == Decimal("12.95")
    response = admin_client.post(
        url("correct", draft), {**data, "number": "2026-402", "amount": "9.00", "_save": "1"}, follow=True
    )
    draft.refresh_from_db()
    assert draft.number == "2026-402" and draft.sync_state == SyncState.LOCAL_DRAFT
    assert any("2026-402: corrected and kept as a local draft." in m for m in texts(response))
    assert len(remote_state(sandbox, "mkp")) == 1


# Discarding ------------------------------------------------------------------------------------
def test_a_draft_is_discarded_with_its_history_and_file_kept(admin_client, sandbox, settings):
    customer = mirrored_mkp_customer(sandbox)
    mkp_upload(admin_client, customer, number="2026-500", draft=True)
    draft = Invoice.objects.get(number="2026-500")
    assert "never reached MijnKlantportaal" in admin_client.get(url("discard", draft)).content.decode()
    response = admin_client.post(url("discard", draft), follow=True)
    draft.refresh_from_db()
    assert draft.sync_state == SyncState.DISCARDED
    assert any("2026-500 discarded" in m for m in texts(response))
    assert list(draft.events.order_by("at", "pk").values_list("kind", flat=True)) == [
        InvoiceEvent.Kind.CREATED_LOCALLY,
        InvoiceEvent.Kind.DISCARDED,
    ]
    assert Path(settings.MEDIA_ROOT, draft.pdf.name).exists()
    changelist = reverse("admin:invoices_invoice_changelist")
    assert url("change", draft) not in admin_client.get(changelist).content.decode()
    assert url("change", draft) in admin_client.get(changelist + "?discarded=only").content.decode()
    # Nothing sends it any more; its number is free again.
    response = admin_client.post(url("send", draft), follow=True)
    assert any("was discarded" in m for m in texts(response))
    mkp_upload(admin_client, customer, number="2026-500")
    assert Invoice.objects.get(number="2026-500", sync_state=SyncState.SYNCED)
    assert remote_state(sandbox, "mkp")[0]["number"] == "2026-500"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"sync_state": SyncState.SYNCED, "remote_id": "inv_x"}, "is at MijnKlantportaal: change it there."),
        ({"sync_state": SyncState.SENDING}, "is being sent to MijnKlantportaal"),
        ({"sync_state": SyncState.PENDING}, "is being sent to MijnKlantportaal"),
        ({"sync_state": SyncState.FAILED, "outcome_unknown": True}, "may already be at MijnKlantportaal"),
    ],
)
def test_what_may_have_reached_the_provider_is_never_discarded_nor_corrected(
    admin_client, sandbox, state, message
):
    customer = mirrored_mkp_customer(sandbox)
    mkp_upload(admin_client, customer, number="2026-600", draft=True)
    invoice = Invoice.objects.get(number="2026-600")
    Invoice.objects.filter(pk=invoice.pk).update(**state)
    events = invoice.events.count()
    for name in ("discard", "correct"):
        response = admin_client.post(url(name, invoice), {"number": "2026-601"}, follow=True)
        assert any(message in m for m in texts(response)), name
    invoice.refresh_from_db()
    assert invoice.sync_state == state["sync_state"] and invoice.number == "2026-600"
    assert invoice.events.count() == events
    page = admin_client.get(url("change", invoice)).content.decode()
    assert "discard-link" not in page and "correct-link" not in page


# Who may ---------------------------------------------------------------------------------------
def test_only_staff_who_may_create_invoices_see_and_use_correct_and_discard(
    admin_client, sandbox, django_user_model
):
    from django.contrib.auth.models import Group
    from django.test import Client

    from invoices.roles import CLERK, VIEWER

    customer = mirrored_mkp_customer(sandbox)
    mkp_upload(admin_client, customer, number="2026-700", draft=True)
    draft = Invoice.objects.get(number="2026-700")
    for group, allowed in ((CLERK, True), (VIEWER, False)):
        user = django_user_model.objects.create_user(username=group, password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        client = Client()
        client.force_login(user)
        page = client.get(url("change", draft)).content.decode()
        assert ("correct-link" in page) == allowed, group
        assert ("discard-link" in page) == allowed, group
        if not allowed:
            assert client.get(url("correct", draft)).status_code == 403
            assert client.post(url("discard", draft)).status_code == 403
            assert client.post(url("correct", draft), {"number": "X", "_save": "1"}).status_code == 403
    draft.refresh_from_db()
    assert draft.sync_state == SyncState.LOCAL_DRAFT and draft.number == "2026-700"
