"""A workaround for Snakemake's scheduler on long local runs: one re-check timer, not thousands.

After every scheduling round, Snakemake's job scheduler (`JobScheduler.schedule`, 8.x and 9.x)
starts a `threading.Timer` that wakes the scheduler again when the job-rate limit's timespan
(`--max-jobs-per-timespan`, default 100 jobs per second) has passed, so that jobs held back by
the limit get scheduled. But the round that timer wakes starts a timer of its own, and so does
every round a finished job wakes: each finished job adds one more timer chain that never ends.
After n finished jobs the scheduler runs about n rounds per timespan, each one sizing the inputs
of the ready jobs (a `stat` per file) and starting a thread. On this study (2,700 jobs, 2 cores)
Snakemake's own process used a third of a core by the middle of the run, taken from the jobs.
(The upstream discussion: snakemake/snakemake#3744, "Do not release lock when job finished".)

`coalesce_reevaluation_timers` keeps at most one such timer pending per scheduler: a request
while one is pending is dropped, since the pending timer's round re-checks everything and asks
for the next timer itself. So a round still follows every request within the timespan, and the
rate limit still holds; only the duplicates are gone. The timer is a daemon thread, so that
Snakemake's exit does not wait for it. Where Snakemake's scheduler has no such method (another
version), nothing is changed.
"""

from __future__ import annotations

import threading

PATCHED_FLAG = "_clexp_coalesced"


def coalesce_reevaluation_timers() -> bool:
    """Patch `JobScheduler._schedule_reevalutation` (Snakemake's spelling) to keep one pending
    timer per scheduler. Returns whether the scheduler now coalesces (False: no such method);
    calling it again changes nothing."""
    try:
        from snakemake.scheduling import job_scheduler
    except ImportError:  # pragma: no cover - a Snakemake without this module
        return False
    scheduler_class = getattr(job_scheduler, "JobScheduler", None)
    original = getattr(scheduler_class, "_schedule_reevalutation", None)
    if original is None:
        return False
    if getattr(original, PATCHED_FLAG, False):
        return True

    def _schedule_reevalutation(self, delay) -> None:
        lock = self.__dict__.setdefault("_clexp_timer_lock", threading.Lock())
        with lock:
            pending = self.__dict__.get("_clexp_timer")
            if pending is not None and pending.is_alive():
                return

            def wake() -> None:
                with lock:
                    self.__dict__["_clexp_timer"] = None
                self._open_jobs.release()

            timer = threading.Timer(delay, wake)
            timer.daemon = True
            self.__dict__["_clexp_timer"] = timer
        timer.start()

    setattr(_schedule_reevalutation, PATCHED_FLAG, True)
    _schedule_reevalutation.__wrapped__ = original
    scheduler_class._schedule_reevalutation = _schedule_reevalutation
    return True
