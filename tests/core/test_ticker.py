"""The shared background threads that flush writers and send heartbeats (core.ticker)."""

import threading
import time

from core.ticker import Ticker
from tests.waiting import wait_for


def test_a_job_runs_until_cancelled_and_a_failing_job_stops_no_other():
    ticker = Ticker("test-ticker")
    calls = {"good": 0, "bad": 0}

    def good() -> None:
        calls["good"] += 1

    def bad() -> None:
        calls["bad"] += 1
        raise RuntimeError("a run's store went away")

    good_job, bad_job = ticker.every(0.01, good), ticker.every(0.01, bad)
    wait_for(lambda: calls["good"] >= 3 and calls["bad"] >= 3, timeout=5, what="both jobs to run three times")
    ticker.cancel(good_job)
    ticker.cancel(bad_job)
    settled = dict(calls)
    time.sleep(0.1)
    assert calls["good"] - settled["good"] <= 1 and calls["bad"] - settled["bad"] <= 1  # one call may have been under way


def test_a_slow_flush_holds_up_no_heartbeat():
    from core.ticker import flushes, heartbeats

    release, beats = threading.Event(), []
    slow = flushes.every(0.01, lambda: release.wait(5))
    beat = heartbeats.every(0.01, lambda: beats.append(time.monotonic()))
    try:
        wait_for(lambda: len(beats) >= 5, timeout=5, what="five beats")  # while the flush thread is stuck in the slow job
    finally:
        release.set()
        flushes.cancel(slow)
        heartbeats.cancel(beat)
