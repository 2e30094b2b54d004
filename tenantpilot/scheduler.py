"""The one scheduler: runs registered ScheduledJobs when due.

Each due slot is claimed with a conditional UPDATE on scheduled_job_state, so two
scheduler processes (a mistaken second dyno, a deploy overlap) never run a slot twice.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import ScheduledJobState
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.scheduler")


def claim(name: str, interval_seconds: int, now=None) -> bool:
    now = now or utcnow()
    if db.session.get(ScheduledJobState, name) is None:
        try:
            db.session.add(ScheduledJobState(name=name, next_run_at=now))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
    res = db.session.execute(
        update(ScheduledJobState)
        .where(ScheduledJobState.name == name, ScheduledJobState.next_run_at <= now)
        .values(next_run_at=now + timedelta(seconds=interval_seconds), last_run_at=now)
    )
    db.session.commit()
    return res.rowcount == 1


def run_due(app, now=None) -> list[str]:
    """Run every job whose slot this process claimed; returns their names."""
    ran = []
    with app.app_context():
        for job in app.extensions["tenantpilot"].registry.scheduled_jobs.values():
            slot = now or utcnow()
            if not claim(job.name, job.interval_seconds, slot):
                continue
            started = time.perf_counter()
            try:
                job.func()
                ran.append(job.name)
                # The slot (the claim's time) names the run: with several schedulers the
                # log shows that every slot ran once, in exactly one of them.
                log.info("scheduled job ran", extra={"job": job.name, "slot": slot.isoformat(),
                                                      "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            except Exception:
                db.session.rollback()
                log.exception("scheduled job %s failed", job.name)
            finally:
                db.session.remove()
    return ran


def run_forever(app, stop: threading.Event | None = None, tick: float = 1.0) -> None:
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            run_due(app)
        except Exception:
            log.exception("scheduler tick failed")
        stop.wait(tick)
