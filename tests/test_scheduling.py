"""Snakemake's scheduler keeps one re-check timer pending, not one per round (clexp.scheduling)."""

from __future__ import annotations

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from clexp.scheduling import coalesce_reevaluation_timers


class Scheduler:
    """What `_schedule_reevalutation` uses of a JobScheduler: the semaphore it releases."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)

    def wakeups(self) -> int:
        count = 0
        while self._open_jobs.acquire(blocking=False):
            count += 1
        return count


def test_snakemakes_own_method_starts_a_timer_per_request():
    """The behaviour the patch removes: ten requests, ten wake-ups (ten rounds, each of which
    asks for its own timer again)."""
    assert coalesce_reevaluation_timers()
    original = JobScheduler._schedule_reevalutation.__wrapped__
    scheduler = Scheduler()
    for _ in range(10):
        original(scheduler, 0.05)
    time.sleep(0.3)
    assert scheduler.wakeups() == 10


def test_requests_while_a_timer_is_pending_are_one_wake_up():
    assert coalesce_reevaluation_timers()
    assert coalesce_reevaluation_timers()  # applying it twice wraps once
    assert not hasattr(JobScheduler._schedule_reevalutation.__wrapped__, "__wrapped__")
    scheduler = Scheduler()
    for _ in range(10):
        JobScheduler._schedule_reevalutation(scheduler, 0.05)
    time.sleep(0.3)
    assert scheduler.wakeups() == 1
    # after it fired, the next request gets a timer of its own: no request is ever lost
    JobScheduler._schedule_reevalutation(scheduler, 0.05)
    time.sleep(0.3)
    assert scheduler.wakeups() == 1
    # schedulers do not share their timer
    first, second = Scheduler(), Scheduler()
    JobScheduler._schedule_reevalutation(first, 0.05)
    JobScheduler._schedule_reevalutation(second, 0.05)
    time.sleep(0.3)
    assert (first.wakeups(), second.wakeups()) == (1, 1)


def test_the_timer_does_not_hold_up_the_exit():
    assert coalesce_reevaluation_timers()
    scheduler = Scheduler()
    JobScheduler._schedule_reevalutation(scheduler, 60)
    assert scheduler._clexp_timer.daemon
    scheduler._clexp_timer.cancel()
