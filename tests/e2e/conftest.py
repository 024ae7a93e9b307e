"""Real-browser tests: Debian's Chromium, driven by Playwright's sync API, against pytest-django's
live server (which also serves the static files, so the admin looks as it does in production).

No browser is ever downloaded: without /usr/bin/chromium these tests skip, and fail instead when
REQUIRE_SERVICES=1, so a missing browser can never pass silently.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no network: nothing may try to reach the outside world.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple"
# Every screenshot of a run is copied here, one folder per test module (var/ is git-ignored).
SHOTS = Path(os.environ.get("E2E_SHOTS") or Path(__file__).resolve().parents[2] / "var" / "e2e-shots")
TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def _sync_orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in the test's thread, and Django refuses
    synchronous ORM calls next to a running loop. The tests' own ORM calls are plain synchronous
    code, so the check is lifted while a browser is open, and restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(_sync_orm_beside_playwright):
    """One Chromium for the whole module."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            _unavailable(f"{CHROMIUM} does not start: {exc}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    """A fresh browser profile (no cookies) per test, pointed at the live server. Static files
    that fail to load are collected on ``page.broken_static``."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.broken_static = []
    tab.on(
        "response",
        lambda r: (
            tab.broken_static.append(f"{r.status} {r.url}")
            if "/static/" in r.url and r.status >= 400
            else None
        ),
    )
    tab.on("requestfailed", lambda r: tab.broken_static.append(f"failed {r.url}"))
    yield tab
    context.close()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(
        username="anna", email="anna@example.nl", password=PASSWORD
    )


@pytest.fixture
def shot(request, tmp_path):
    """Save a screenshot (the full page, or only what the window shows) into the test's folder, and
    a copy under ``SHOTS/<test module>/``."""
    folder = SHOTS / request.module.__name__.rsplit(".", 1)[-1]

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = tmp_path / name
        page.screenshot(path=str(path), full_page=full_page)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
        return path

    return take
