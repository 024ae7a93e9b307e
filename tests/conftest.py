import os

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def _isolated_files(settings, tmp_path):
    """Uploaded PDFs live in the test's own folder, and every test has its own request budgets."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    if settings.RATE_LIMIT_URL.startswith("redis"):
        # Each test starts with a fresh request budget, as it does with its own SQLite file.
        import redis

        redis.Redis.from_url(settings.RATE_LIMIT_URL).flushdb()
    else:
        settings.RATE_LIMIT_URL = f"sqlite:///{tmp_path / 'ratelimit.sqlite3'}"


@pytest.fixture
def queued(monkeypatch):
    """The invoice ids handed to the push task after commit, instead of a broker. Wrap the request
    in ``django_capture_on_commit_callbacks(execute=True)`` to run the on-commit hooks."""
    from invoices import tasks

    calls: list[list[int]] = []
    monkeypatch.setattr(tasks.push_invoices, "delay", lambda ids: calls.append(list(ids)))
    return calls


@pytest.fixture(scope="session")
def sandbox_server():
    """Both provider APIs over real HTTP on loopback, for the whole test session."""
    from integrations.sandbox.server import SandboxServer

    with SandboxServer(rate_limit=False) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server, settings):
    """A clean sandbox with no faults, and the product's clients pointed at it."""
    import requests

    admin = sandbox_server.admin_url
    requests.post(f"{admin}/reset", timeout=10).raise_for_status()
    # Every fault setting back to its default: nothing a test changed leaks into the next.
    faults = {
        "probabilities": {},
        "after_share": 0.5,
        "seed": None,
        "slow_seconds": 2.0,
        "timeout_seconds": 3.0,
        "providers": ["mkp", "qonto"],
        "methods": None,
    }
    requests.post(f"{admin}/faults", json=faults, timeout=10).raise_for_status()
    requests.post(
        f"{admin}/config",
        json={"rate_limit": False, "mkp_license_limit": None, "qonto_staging_token": None},
        timeout=10,
    ).raise_for_status()
    settings.MKP_BASE_URL = sandbox_server.mkp_base_url
    settings.MKP_API_KEY = "sandbox-mkp-key"
    settings.QONTO_BASE_URL = sandbox_server.qonto_base_url
    settings.QONTO_LOGIN = "sandbox-org"
    settings.QONTO_SECRET_KEY = "sandbox-secret"
    settings.QONTO_ACCESS_TOKEN = ""
    # Patient enough for a busy machine; tests that hold requests on purpose use ``short_read_timeout``.
    settings.PROVIDER_READ_TIMEOUT = 10.0
    return sandbox_server


@pytest.fixture
def short_read_timeout(settings):
    """The clients give up after 1.5 s, well before the sandbox answers a request it holds (>= 2.5 s)."""
    settings.PROVIDER_READ_TIMEOUT = 1.5
    return settings.PROVIDER_READ_TIMEOUT
