"""A record the mirror cannot hold is quarantined, not a reason to stop: syncs against the sandbox
over HTTP with hostile records placed at the provider, and the staff's list of sync problems."""

import pytest
import requests
from django.urls import reverse

from invoices.models import Customer, Invoice, Provider, SyncProblem, SyncRun
from invoices.roles import VIEWER
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider
from tests.invoices.helpers import remote_state, seed
from tests.invoices.test_pdf_and_export import login

pytestmark = pytest.mark.django_db

LONG_NUMBER = "N" * 100  # MijnKlantportaal allows 255: held
OBJECT_ID = {"id": "not a string"}


def show(sandbox, provider: str, object_id: str, fields: dict | None) -> None:
    """The provider lists and serves the record with ``fields`` in place of its own (None: as it is)."""
    requests.post(
        f"{sandbox.admin_url}/raw/{provider}/{object_id}", json={"fields": fields}, timeout=10
    ).raise_for_status()


def problems(provider: str, **filters) -> dict[str, SyncProblem]:
    return {p.remote_id: p for p in SyncProblem.objects.filter(provider=provider, **filters)}


@pytest.mark.parametrize(
    ("provider", "mode", "poisons"),
    [
        (
            Provider.MKP,
            MODE_QUICK,
            {
                "invoiceNumber": "N" * 300,
                "amount": "1E+20",
                "issuedAt": "2024-04-31",
                "createdAt": "0001-01-01T00:00:00+14:00",
            },
        ),
        (
            Provider.QONTO,
            MODE_QUICK,
            {
                "number": "N" * 300,
                "total_amount": {"value": "NaN", "currency": "EUR"},
                "total_amount_cents": "1E+1000002",
                "issue_date": "2024-04-31",
                "paid_at": "9999-12-31T23:30:00-01:00",
            },
        ),
    ],
)
def test_poison_invoices_are_quarantined_and_the_sync_goes_on_until_the_provider_fixes_them(
    sandbox, settings, provider, mode, poisons
):
    seed(sandbox, invoices=40, customers=3)  # MijnKlantportaal: pages of 15, so three pages
    settings.MKP_SYNC_PAGE_BUDGET = 40
    ids = [row["id"] for row in remote_state(sandbox, provider)]
    poisoned = dict(zip(ids[1::8], poisons.items(), strict=False))  # on the first page and later ones
    for remote_id, (field, value) in poisoned.items():
        show(sandbox, provider, remote_id, {field: value})
    number_field = "invoiceNumber" if provider == Provider.MKP else "number"
    show(sandbox, provider, ids[0], {number_field: LONG_NUMBER})
    show(sandbox, provider, ids[-1], {"id": OBJECT_ID})

    run = sync_provider(provider=provider, mode=mode)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.quarantined == len(poisoned) + 1
    stored = set(Invoice.objects.filter(provider=provider).values_list("remote_id", flat=True))
    assert stored == set(ids) - set(poisoned) - {ids[-1]}, "the rest of each page and the later pages"
    assert Invoice.objects.get(provider=provider, remote_id=ids[0]).number == LONG_NUMBER
    found = problems(provider, kind=SyncProblem.Kind.INVOICE)
    for remote_id, (field, value) in poisoned.items():
        problem = found[remote_id]
        assert problem.field == field
        assert str(value) in problem.value or problem.value in str(value)
        assert problem.raw["id"] == remote_id and problem.raw[field] == value
        assert problem.resolved_at is None and problem.seen == 1
    [id_problem] = [p for key, p in found.items() if key.startswith("sha256:")]
    assert (id_problem.field, id_problem.raw["id"]) == ("id", OBJECT_ID)

    # Seen again: one problem each, counted; still skipped.
    again = sync_provider(provider=provider, mode=mode)
    if provider == Provider.MKP:  # Qonto's window lists only what changed since
        assert again.quarantined == len(poisoned) + 1
        assert {p.seen for p in problems(provider).values()} == {2}
    assert SyncProblem.objects.filter(provider=provider).count() == len(poisoned) + 1

    # The provider fixes them: the next sync stores the invoices and resolves their problems.
    for remote_id in [*poisoned, ids[-1]]:
        show(sandbox, provider, remote_id, None)
    fixed = sync_provider(provider=provider, mode=mode)
    assert (fixed.status, fixed.quarantined) == (SyncRun.Status.SUCCEEDED, 0)
    assert Invoice.objects.filter(provider=provider).count() == 40
    resolved = problems(provider, resolved_at__isnull=False)
    assert set(poisoned) <= set(resolved)
    assert all(p.first_seen_at < p.resolved_at for p in resolved.values())
    # A record without a usable id cannot be matched to its corrected copy: a complete pass that no
    # longer meets it resolves it (a quick MijnKlantportaal run reads the whole three-page list).
    if provider == Provider.QONTO:
        assert list(problems(provider, resolved_at__isnull=True)) == [id_problem.remote_id]
        assert sync_provider(provider=provider, mode=MODE_FULL).status == SyncRun.Status.SUCCEEDED
    assert not problems(provider, resolved_at__isnull=True)


def test_a_mirrored_invoice_turned_unreadable_keeps_its_last_copy_and_is_not_taken_for_removed(sandbox):
    seed(sandbox, invoices=20, customers=2)
    sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    invoice = Invoice.objects.filter(provider=Provider.MKP).order_by("pk").first()
    show(sandbox, Provider.MKP, invoice.remote_id, {"amount": "NaN"})

    run = sync_provider(provider=Provider.MKP, mode=MODE_FULL)

    assert (run.status, run.quarantined, run.removed) == (SyncRun.Status.SUCCEEDED, 1, 0)
    kept = Invoice.objects.get(pk=invoice.pk)
    assert (kept.amount, kept.removed_at) == (invoice.amount, None)
    assert kept.last_seen_at > invoice.last_seen_at, "still listed at the provider"
    assert SyncProblem.objects.get(remote_id=invoice.remote_id).value == "NaN"

    show(sandbox, Provider.MKP, invoice.remote_id, None)
    sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert SyncProblem.objects.get(remote_id=invoice.remote_id).resolved_at is not None

    # Unreadable once more: the same problem opens again, its first sighting kept.
    first_seen = SyncProblem.objects.get(remote_id=invoice.remote_id).first_seen_at
    show(sandbox, Provider.MKP, invoice.remote_id, {"amount": "1E+20"})
    sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    problem = SyncProblem.objects.get(remote_id=invoice.remote_id)
    assert (problem.resolved_at, problem.value, problem.seen, problem.first_seen_at) == (
        None,
        "1E+20",
        2,
        first_seen,
    )


@pytest.mark.parametrize(("provider", "field"), [(Provider.MKP, "companyName"), (Provider.QONTO, "name")])
def test_a_customer_the_mirror_cannot_hold_is_quarantined_too(sandbox, provider, field):
    seed(sandbox, invoices=0, customers=3)
    sync_provider(provider=provider, mode=MODE_CUSTOMERS)
    customer = Customer.objects.filter(provider=provider).order_by("pk").first()
    show(sandbox, provider, customer.remote_id, {field: "C" * 300})

    run = sync_provider(provider=provider, mode=MODE_CUSTOMERS)

    assert (run.status, run.quarantined, run.unchanged) == (SyncRun.Status.SUCCEEDED, 1, 2)
    problem = SyncProblem.objects.get(provider=provider, kind=SyncProblem.Kind.CUSTOMER)
    assert (problem.remote_id, problem.field) == (customer.remote_id, field)

    show(sandbox, provider, customer.remote_id, None)
    assert sync_provider(provider=provider, mode=MODE_CUSTOMERS).quarantined == 0
    problem.refresh_from_db()
    assert problem.resolved_at is not None


def test_a_page_of_nothing_but_bad_records_is_counted_and_written_in_one_transaction():
    from integrations.mkp import mappers
    from invoices.sync.pages import pull_pages
    from tests.integrations.test_mkp_mappers import invoice_payload
    from tests.invoices.test_mirror import Recorder

    bad = [invoice_payload(id=f"inv_{n}", amount="NaN") for n in range(3)]
    listed_twice = [*bad, bad[0]]
    page = mappers.page_from_payload({"data": listed_twice}, mappers.invoice_from_payload, requested_page=1)
    recorder = Recorder()

    pull_pages(iter([page]), Provider.MKP, recorder, lambda: True)

    recorder.run.refresh_from_db()
    assert (recorder.run.pages, recorder.run.created, recorder.run.quarantined) == (1, 0, 3)
    assert sorted(problems(Provider.MKP)) == ["inv_0", "inv_1", "inv_2"]
    assert {p.seen for p in problems(Provider.MKP).values()} == {1}, (
        "a record listed twice is seen once a page"
    )


def test_staff_who_may_see_the_sync_see_its_problems_with_the_payload(django_user_model):
    problem = SyncProblem.objects.create(
        provider=Provider.MKP,
        kind=SyncProblem.Kind.INVOICE,
        remote_id="inv_bad",
        field="amount",
        value="NaN",
        message="MijnKlantportaal sent invoice inv_bad with an amount that is not a number.",
        raw={"id": "inv_bad", "amount": "NaN", "note": "<script>"},
    )
    SyncProblem.objects.create(
        provider=Provider.QONTO, kind=SyncProblem.Kind.INVOICE, remote_id="q-fixed", message="fixed since"
    )
    SyncProblem.objects.filter(remote_id="q-fixed").update(resolved_at=problem.first_seen_at)
    viewer = login(django_user_model, "victor", VIEWER)

    listing = viewer.get(reverse("admin:invoices_syncproblem_changelist"), {"open": "yes"})
    assert listing.status_code == 200
    assert b"inv_bad" in listing.content and b"q-fixed" not in listing.content
    page = viewer.get(reverse("admin:invoices_syncproblem_change", args=[problem.pk]))
    assert page.status_code == 200
    assert b"&quot;amount&quot;: &quot;NaN&quot;" in page.content, "the payload, pretty and escaped"
    assert b"<script>" not in page.content.split(b"payload as sent")[-1].split(b"</pre>")[0]


def test_the_mappers_check_against_the_columns_of_the_mirror():
    from integrations import records

    def length(model, name):
        return model._meta.get_field(name).max_length

    for name in ("remote_id", "customer_remote_id", "attachment_id"):
        assert length(Invoice, name) == records.ID_LENGTH
    assert length(Customer, "remote_id") == records.ID_LENGTH
    for model, name in (
        (Invoice, "number"),
        (Invoice, "customer_name"),
        (Customer, "name"),
        (Customer, "email"),
    ):
        assert length(model, name) == records.TEXT_LENGTH
    assert length(Invoice, "payment_link") == records.URL_LENGTH
    assert length(Invoice, "currency") == 3
    assert length(SyncProblem, "remote_id") == records.KEY_LENGTH
    amount = Invoice._meta.get_field("amount")
    assert (amount.max_digits, amount.decimal_places) == (records.AMOUNT_DIGITS, records.AMOUNT_PLACES)
