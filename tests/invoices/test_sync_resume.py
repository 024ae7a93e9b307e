"""Progress survives failure: a page that fails once is tried again inside the run; a page that
keeps failing ends the run with what came before it kept, and the next run resumes there."""

import io
import time
from datetime import datetime

import pytest
from django.core.management import call_command

from integrations.mkp.client import MijnKlantportaalClient
from integrations.qonto.client import QontoClient
from integrations.ratelimit import Window
from invoices import tasks
from invoices.models import Customer, Invoice, Provider, SyncCursor, SyncRun
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider, walk
from invoices.sync.runs import abandon_stopped_runs
from tests.invoices.helpers import seed, set_faults

pytestmark = pytest.mark.django_db


@pytest.fixture
def waits(monkeypatch, settings):
    """The waits of the walk before it asks for a page again (not slept: the tests stay fast)."""
    settings.SYNC_PAGE_ATTEMPTS = 3
    seconds: list[float] = []
    monkeypatch.setattr(walk, "sleep", seconds.append)
    return seconds


@pytest.fixture
def heal_on_retry(sandbox, monkeypatch, waits):
    """The first wait before a retry clears the faults: the page fails once, then answers."""

    def heal(seconds: float) -> None:
        waits.append(seconds)
        set_faults(sandbox, {})

    monkeypatch.setattr(walk, "sleep", heal)
    return waits


def fail_from_page(monkeypatch, sandbox, client_class, method: str, page: int, kind: str = "html"):
    """Every request fails with ``kind`` from the moment ``page`` of that list is asked for."""
    original = getattr(client_class, method)

    def fetch(self, *args, **kwargs):
        if kwargs.get("page", args[0] if args else 1) == page:
            set_faults(sandbox, {kind: 1.0})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(client_class, method, fetch)
    return lambda: (monkeypatch.setattr(client_class, method, original), set_faults(sandbox, {}))


def cursor(provider: str, name: str) -> str:
    row = SyncCursor.objects.filter(provider=provider, name=name).first()
    return row.value if row else ""


@pytest.mark.parametrize("kind", ["500", "html", "malformed", "burst429", "reset"])
def test_a_page_that_fails_once_is_tried_again_and_the_run_succeeds(sandbox, heal_on_retry, kind):
    seed(sandbox, invoices=15 * 3, customers=2)
    set_faults(sandbox, {kind: 1.0}, providers=["mkp"])
    run = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert (run.status, run.error, run.created) == (SyncRun.Status.SUCCEEDED, "", 45)
    assert len(heal_on_retry) == 1
    if kind == "burst429":
        assert heal_on_retry == [2.0], "the provider's short Retry-After is what the run waits"


def test_a_quick_mkp_run_that_fails_keeps_its_pages_and_the_next_one_goes_on_from_the_failed_page(
    sandbox, monkeypatch, waits
):
    seed(sandbox, invoices=15 * 10, customers=2)
    heal = fail_from_page(monkeypatch, sandbox, MijnKlantportaalClient, "list_invoices", page=4)
    failed = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert failed.status == SyncRun.Status.FAILED
    assert "web page" in failed.error
    assert len(waits) == 2, "tried three times in the run"
    assert Invoice.objects.count() == 45, "pages 1 to 3 are kept"
    assert cursor(Provider.MKP, "full_pass_page") == "4"
    assert failed.progress == "page 4"
    heal()
    again = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert again.status == SyncRun.Status.SUCCEEDED
    assert again.requests == 1 + 7, "page 1, then pages 4 to 10: pages 2 and 3 are not read again"
    assert Invoice.objects.count() == 150


def test_a_failed_qonto_run_moves_the_cursor_to_what_it_wrote_and_the_next_run_goes_on(
    sandbox, monkeypatch, waits
):
    seed(sandbox, invoices=250, customers=2)
    heal = fail_from_page(monkeypatch, sandbox, QontoClient, "list_invoices", page=2)
    failed = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert failed.status == SyncRun.Status.FAILED
    written = set(Invoice.objects.filter(provider=Provider.QONTO).values_list("remote_id", flat=True))
    assert len(written) == 100
    reached = cursor(Provider.QONTO, "updated_at")
    assert reached, "the cursor moved to the last change written"
    heal()
    again = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert again.status == SyncRun.Status.SUCCEEDED
    assert Invoice.objects.filter(provider=Provider.QONTO).count() == 250
    # Oldest change first: every invoice changed before the cursor was among those written.
    before = Invoice.objects.filter(provider=Provider.QONTO, remote_updated_at__lt=reached)
    assert set(before.values_list("remote_id", flat=True)) <= written
    newest_written = Invoice.objects.filter(remote_id__in=written).order_by("-remote_updated_at").first()
    assert newest_written.remote_updated_at == datetime.fromisoformat(reached)


def test_a_failed_customer_sync_resumes_and_is_tried_again_soon(sandbox, monkeypatch, waits, settings):
    seed(sandbox, invoices=0, customers=40)  # 3 pages of 15 at MijnKlantportaal
    heal = fail_from_page(monkeypatch, sandbox, MijnKlantportaalClient, "list_customers", page=2)
    retried: list[int] = []
    monkeypatch.setattr(
        tasks.sync_provider, "retry", lambda countdown: retried.append(countdown) or Retried()
    )
    with pytest.raises(Retried):
        tasks.sync_provider("mkp", "customers")
    assert retried == [settings.SYNC_RETRY_FAILED_SECONDS]
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED
    assert Customer.objects.filter(provider=Provider.MKP).count() == 15
    assert cursor(Provider.MKP, "customers_page") == "2"
    heal()
    again = sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    assert (again.status, again.requests) == (SyncRun.Status.SUCCEEDED, 2)
    assert Customer.objects.filter(provider=Provider.MKP).count() == 40
    assert cursor(Provider.MKP, "customers_page") == "", "the next customer sync starts a new pass"


class Retried(Exception):
    pass


def test_a_full_mkp_run_waits_for_the_request_budget_instead_of_stopping(
    sandbox, monkeypatch, settings, tmp_path
):
    seed(sandbox, invoices=15 * 8, customers=2)
    settings.RATE_LIMIT_URL = f"sqlite:///{tmp_path / 'budget.sqlite3'}"
    monkeypatch.setattr(MijnKlantportaalClient, "windows", (Window(6, 1.0),))
    settings.SYNC_MAX_WAIT_SECONDS = 0  # every wait for the budget is the run's own
    waited: list[float] = []
    monkeypatch.setattr(walk, "sleep", lambda seconds: (waited.append(seconds), time.sleep(seconds)))
    out = io.StringIO()
    call_command("sync_invoices", "--provider", "mkp", "--mode", "full", stdout=out)
    run = SyncRun.objects.get(kind=MODE_FULL)
    assert (run.status, run.created, run.pages) == (SyncRun.Status.SUCCEEDED, 120, 8)
    assert waited, "the budget ran out on the way and the run waited for it"
    assert "  progress: complete: 8 pages" in out.getvalue()


def test_a_full_mkp_run_that_fails_or_is_killed_is_resumed_at_the_page_it_reached(
    sandbox, monkeypatch, settings, waits
):
    seed(sandbox, invoices=15 * 8, customers=2)
    settings.SYNC_CHECKPOINT_SECONDS = 0  # the position is kept after every page
    heal = fail_from_page(monkeypatch, sandbox, MijnKlantportaalClient, "list_invoices", page=4)
    failed = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert failed.status == SyncRun.Status.FAILED
    assert (failed.progress, cursor(Provider.MKP, "full_run_page")) == ("page 4", "4")
    assert cursor(Provider.MKP, "unseen_before") == "", "removals wait for a complete pass"
    heal()

    # The worker is killed at page 6: nothing of the run's own ends it.
    original = MijnKlantportaalClient.list_invoices

    def killed_at_six(self, page=1):
        if page == 6:
            raise SystemExit("kill -9")
        return original(self, page)

    monkeypatch.setattr(MijnKlantportaalClient, "list_invoices", killed_at_six)
    with pytest.raises(SystemExit):
        sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    killed = SyncRun.objects.filter(kind=MODE_FULL).order_by("pk").last()
    assert killed.status == SyncRun.Status.RUNNING
    assert cursor(Provider.MKP, "full_run_page") == "6"
    assert abandon_stopped_runs() == 1
    killed.refresh_from_db()
    assert killed.status == SyncRun.Status.ABANDONED
    assert "the next run resumes where it stopped" in killed.error

    monkeypatch.setattr(MijnKlantportaalClient, "list_invoices", original)
    done = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert (done.status, done.requests, done.removed) == (SyncRun.Status.SUCCEEDED, 3, 0)
    assert Invoice.objects.count() == 120
    assert cursor(Provider.MKP, "last_page") == "8", "the pass completed, and was judged"
    assert cursor(Provider.MKP, "full_run_page") == "", "the next full run starts a new pass"


def test_what_a_run_tries_again_and_what_it_does_not(settings):
    from integrations import errors
    from invoices.sync.walk import wait_before_retry

    settings.SYNC_PAGE_ATTEMPTS, settings.SYNC_SHORT_RETRY_AFTER_SECONDS = 4, 30

    def provider_429(seconds):
        return errors.ProviderRateLimited("slow down", retry_after=seconds, status_code=429)

    assert wait_before_retry(errors.ProviderServerError("500"), 1) is not None
    assert wait_before_retry(errors.ProviderServerError("500"), 4) is None, "after the last attempt"
    assert wait_before_retry(errors.ProviderValidationError("422", status_code=422), 1) is None
    assert wait_before_retry(errors.ProviderUnauthorized("401", status_code=401), 1) is None
    assert wait_before_retry(errors.ProviderConfigurationError("no key"), 1) is None
    assert wait_before_retry(errors.ProviderConfigurationError("a web page", status_code=200), 1) is not None
    assert wait_before_retry(provider_429(2), 1) == 2
    assert wait_before_retry(provider_429(120), 1) is None, "a quick run stops; the next one goes on"
    assert wait_before_retry(provider_429(120), 1, patient=True) == 120
    ours = errors.ProviderRateLimited("budget spent", retry_after=50)
    assert wait_before_retry(ours, 1) is None
    assert wait_before_retry(ours, 99, patient=True) == 50, "a full run waits for the budget, however often"
