"""The shared limiter against real Redis and the SQLite fallback: staff work first, the margin, and
a store that cannot be reached."""

import time

import pytest
import redis
import responses

from integrations import errors
from integrations.breaker import RedisBreaker, SqliteBreaker
from integrations.mkp.client import DEFAULT_BASE_URL, MijnKlantportaalClient
from integrations.qonto.client import QontoClient
from integrations.ratelimit import SCAN, STAFF, RedisRateLimiter, SqliteRateLimiter, Window

REDIS_URL = "redis://127.0.0.1:6379/12"
CLOSED_PORT = "redis://127.0.0.1:1/0"


def _redis_or_skip():
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return RedisRateLimiter(REDIS_URL)


@pytest.fixture(params=["redis", "sqlite"])
def limiter(request, tmp_path):
    if request.param == "redis":
        yield _redis_or_skip()
        redis.Redis.from_url(REDIS_URL).flushdb()
    else:
        yield SqliteRateLimiter(tmp_path / "ratelimit.sqlite3")


def grants(limiter, window, priority, tries):
    return sum(limiter.try_acquire("k", (window,), priority) == 0 for _ in range(tries))


def test_staff_work_may_use_the_whole_window(limiter):
    window = Window(10, 60.0)
    assert grants(limiter, window, STAFF, 12) == 10


def test_an_idle_back_office_leaves_the_scan_all_but_the_reserve(limiter):
    window = Window(10, 60.0)
    assert grants(limiter, window, SCAN, 12) == 9, "one in ten stays free for staff"
    assert grants(limiter, window, STAFF, 2) == 1, "staff take the reserve at once"


def test_the_scan_leaves_free_as_many_slots_as_staff_work_used(limiter):
    window = Window(10, 60.0)
    assert grants(limiter, window, STAFF, 3) == 3
    assert grants(limiter, window, SCAN, 10) == 4  # 3 staff + 4 scan, 3 left for staff
    assert grants(limiter, window, STAFF, 5) == 3


def test_a_staff_request_waiting_for_a_slot_holds_the_scan_back(limiter):
    window = Window(2, 0.4)
    assert grants(limiter, window, STAFF, 2) == 2
    wait = limiter.try_acquire("k", (window,), STAFF)
    assert 0 < wait <= 0.4
    time.sleep(0.45)  # the window is empty again, but a staff request is still waiting
    assert 0 < limiter.try_acquire("k", (Window(2, 60.0),), SCAN) <= 1.0, (
        "told to wait for the staff request only"
    )
    assert limiter.try_acquire("k", (window,), STAFF) == 0


def test_a_bulk_action_takes_the_budget_from_a_running_scan_within_a_window(limiter):
    """The scan ran alone; then a bulk action and the scan ask in turn: after the window the scan
    had filled, staff get at least 0.8 of the limit."""
    window = Window(20, 0.3)
    assert grants(limiter, window, SCAN, 25) == 19  # all but the reserve: 2% of 20, at least one
    start = time.monotonic()
    # Three windows, from half a window after the one the scan had filled.
    measured_from, stop = start + 1.5 * window.seconds, start + 4.5 * window.seconds
    staff = scan = 0
    while (now := time.monotonic()) < stop:
        wait = limiter.try_acquire("k", (window,), STAFF)
        staff += wait == 0 and now >= measured_from
        scan += limiter.try_acquire("k", (window,), SCAN) == 0
        time.sleep(wait)
    assert staff >= 0.8 * window.limit * 3
    assert scan <= 0.2 * window.limit * 4


def test_every_limit_is_used_less_a_margin():
    assert Window(60, 60.0).less(0.1) == Window(54, 60.0)
    assert MijnKlantportaalClient(api_key="k").windows == (Window(57, 60.0),)
    assert MijnKlantportaalClient(api_key="k", margin=0.08).windows == (Window(55, 60.0),)
    assert QontoClient(login="o", secret_key="s").windows == (Window(950, 10.0), Window(9500, 600.0))


def test_a_window_of_one_is_the_scan_s_when_staff_are_idle(limiter):
    assert grants(limiter, Window(1, 60.0), SCAN, 2) == 1


def test_limiters_with_another_margin_share_one_budget(limiter):
    assert grants(limiter, Window(3, 60.0), STAFF, 3) == 3
    assert grants(limiter, Window(4, 60.0), STAFF, 3) == 1


def test_an_unknown_priority_is_refused(limiter):
    with pytest.raises(ValueError):
        limiter.acquire("k", (Window(1, 1.0),), max_wait=0, priority="urgent")


# The store cannot be reached -----------------------------------------------------------------------
def test_redis_unreachable_is_a_typed_error():
    with pytest.raises(errors.RateLimiterUnavailable) as caught:
        RedisRateLimiter(CLOSED_PORT).try_acquire("k", (Window(1, 1.0),))
    assert caught.value.retryable and not caught.value.outcome_unknown
    assert "RATE_LIMIT_URL" in str(caught.value)


def test_a_sqlite_file_that_cannot_be_opened_is_a_typed_error(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(errors.RateLimiterUnavailable):
        SqliteRateLimiter(tmp_path / "not-a-folder" / "ratelimit.sqlite3")
    limiter = SqliteRateLimiter(tmp_path / "ratelimit.sqlite3")
    (tmp_path / "ratelimit.sqlite3").unlink()
    (tmp_path / "ratelimit.sqlite3").mkdir()
    with pytest.raises(errors.RateLimiterUnavailable):
        limiter.try_acquire("k", (Window(1, 1.0),))


def test_the_breaker_store_unreachable_is_the_same_typed_error(tmp_path):
    with pytest.raises(errors.RateLimiterUnavailable):
        RedisBreaker(CLOSED_PORT).is_open("k")
    breaker = SqliteBreaker(tmp_path / "breaker.sqlite3")
    (tmp_path / "breaker.sqlite3").unlink()
    (tmp_path / "breaker.sqlite3").mkdir()
    with pytest.raises(errors.RateLimiterUnavailable):
        breaker.trip("k", 60)


@responses.activate
def test_a_client_sends_nothing_when_the_store_is_down():
    client = MijnKlantportaalClient(api_key="k", rate_limiter=RedisRateLimiter(CLOSED_PORT))
    with pytest.raises(errors.RateLimiterUnavailable) as caught:
        client.get_invoice("inv_1")
    assert caught.value.provider == "mkp"
    assert not responses.calls
    assert f"{DEFAULT_BASE_URL}" not in str(caught.value)
