"""RQ queues, the app-context worker, and embedded mode.

Embedded mode (REDIS_URL unset): the queue lives on an in-process fakeredis server and
an RQ SimpleWorker drains it from a background thread, so the app runs with nothing but
Python. Why SimpleWorker everywhere: RQ's forking Worker costs ~14 ms per job (≈72 jobs/s)
against ≈250 jobs/s for SimpleWorker here, and our jobs carry a batch of tenants each, so
fork isolation buys little; the Procfile worker recycles itself with --max-jobs instead.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid

import fakeredis
import redis
from flask import current_app
from rq import Callback, Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from . import words
from .timeutil import timestamp

log = logging.getLogger("tenantpilot.queue")


class QueueUnavailable(RuntimeError):
    """The job queue could not be reached."""


def connect(app):
    """The Redis connection of an app: real Redis, or an in-process fakeredis server."""
    url = app.config.get("REDIS_URL")
    if url:
        return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return fakeredis.FakeStrictRedis(server=fakeredis.FakeServer())


def queue_names(app) -> list[str]:
    prefix = app.config["TENANTPILOT_QUEUE_PREFIX"]
    # Alert deliveries first so they never wait behind a 5,000-tenant fan-out.
    return [f"{prefix}-deliveries", f"{prefix}-runs"]


def get_queue(name: str = "runs", app=None) -> Queue:
    app = app or current_app
    state = app.extensions["tenantpilot"]
    return Queue(f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-{name}", connection=state.redis)


def all_queues(app=None) -> list[Queue]:
    app = app or current_app
    state = app.extensions["tenantpilot"]
    return [Queue(n, connection=state.redis) for n in queue_names(app)]


def enqueue_batches(run_id: int, batches: dict[str, list[int]], continuation: int = 0) -> None:
    """One RQ job per batch of tenants; job ids were fixed at run creation."""
    from . import jobs

    app = current_app._get_current_object()  # the worker thread outlives this context
    q = get_queue("runs")
    datas = [
        Queue.prepare_data(
            jobs.run_tenant_batch,
            args=(run_id, tenant_ids),
            job_id=job_id,
            timeout=app.config["TENANTPILOT_JOB_TIMEOUT"],
            result_ttl=3600,
            failure_ttl=7 * 86400,
            meta={"run_id": run_id, "continuation": continuation},
            on_failure=Callback(jobs.handle_batch_failure),
            description=f"run {run_id}: {words.tenants(len(tenant_ids))}",
        )
        for job_id, tenant_ids in batches.items()
    ]
    try:
        q.enqueue_many(datas)
    except redis.RedisError as exc:
        raise QueueUnavailable(str(exc)) from exc
    ensure_embedded_worker(app)


def enqueue_due_scheduled_jobs(app=None) -> int:
    """Move due jobs from each queue's ScheduledJobRegistry back onto their queue (RQ
    retries with an interval > 0 wait there). Our workers run without RQ's scheduler
    process (it forks, and needs Lua, which the embedded fakeredis lacks), so the one
    tenantpilot scheduler does it. A job is enqueued only by whoever removed it from the
    registry (ZREM is atomic), so concurrent callers never enqueue it twice.
    Returns how many jobs were moved."""
    app = app or current_app
    moved = 0
    for q in all_queues(app):
        registry = q.scheduled_job_registry
        # Due by the app's clock (tenantpilot.timeutil), so tests move time instead of sleeping.
        for job_id in registry.get_jobs_to_schedule(timestamp=int(timestamp())):
            if not q.connection.zrem(registry.key, job_id):
                continue  # someone else moved it
            job = q.fetch_job(job_id)
            if job is None:
                continue  # expired meanwhile
            q.enqueue_job(job, at_front=job.should_enqueue_at_front())
            moved += 1
    if moved:
        ensure_embedded_worker(app)
    return moved


class AppWorker(SimpleWorker):
    """Runs every job inside a fresh app context of the worker's app.

    A SimpleWorker runs the job in its own thread, so nothing would heartbeat while a job
    runs; a small thread does it here (every ``heartbeat_seconds``), and the job's
    started-registry entry lives three beats. A killed worker's job is therefore found
    by the reaper's ``StartedJobRegistry.cleanup()`` within about 3 beats plus the reaper
    interval (≈45 s with the defaults), however long the job's timeout is.
    """

    flask_app = None
    heartbeat_seconds = 10
    _beating = None  # (job, execution) while a job runs
    _beater = None

    def work(self, *args, **kwargs):
        self._beater_stop = threading.Event()
        try:
            return super().work(*args, **kwargs)
        finally:
            self._beater_stop.set()

    def _ensure_beater(self) -> None:
        """One heartbeat thread per worker (not per job: a batch of one tenant per job
        must not pay a thread start)."""
        if self._beater is not None and self._beater.is_alive():
            return
        stop = getattr(self, "_beater_stop", None) or threading.Event()
        self._beater_stop = stop

        def beat():
            while not stop.wait(self.heartbeat_seconds):
                current = self._beating
                if current is not None:
                    try:
                        self.maintain_heartbeats(*current)
                    except Exception:
                        log.warning("worker heartbeat failed", exc_info=True)

        self._beater = threading.Thread(target=beat, name=f"{self.name}-heartbeat", daemon=True)
        self._beater.start()

    def perform_job(self, job, queue, execution) -> bool:
        from .extensions import db

        self._ensure_beater()
        self._beating = (job, execution)
        with self.flask_app.app_context():
            started = time.perf_counter()
            try:
                return super().perform_job(job, queue, execution)
            finally:
                self._beating = None
                db.session.remove()
                log.info("job finished", extra={"job_id": job.id, "run_id": (job.meta or {}).get("run_id"),
                                                 "duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        # Three missed beats and the job counts as abandoned (its timeout is enforced
        # separately, by the death penalty).
        return 3 * self.heartbeat_seconds


class ThreadWorker(AppWorker):
    """For embedded mode: no signal handlers (not the main thread), timer-based timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def make_worker(app, thread: bool = False, **kwargs) -> AppWorker:
    cls = ThreadWorker if thread else AppWorker
    kwargs.setdefault("name", f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-{uuid.uuid4().hex[:10]}")
    worker = cls(all_queues(app), connection=app.extensions["tenantpilot"].redis, **kwargs)
    worker.flask_app = app
    worker.heartbeat_seconds = app.config["TENANTPILOT_WORKER_HEARTBEAT_SECONDS"]
    if app.config["TENANTPILOT_WORKER_ASYNC_COMMIT"] and not thread:
        _asynchronous_commits(app)
    return worker


def _asynchronous_commits(app) -> None:
    """Worker processes only: see TENANTPILOT_WORKER_ASYNC_COMMIT in config.py."""
    from sqlalchemy import event

    from .extensions import db

    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _set(dbapi_connection, _record):
        with dbapi_connection.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
        dbapi_connection.commit()

    engine.dispose()  # pooled connections were opened without it


def drain_embedded(app) -> None:
    """For CLI commands in embedded mode: the in-process queue dies with the process, so
    run what was enqueued before returning (no-op with Redis: real workers take it)."""
    if app.extensions["tenantpilot"].embedded:
        from .extensions import db

        # The command's own open transaction would hold SQLite's write lock (every
        # transaction begins IMMEDIATE) against the jobs run here: end it first.
        db.session.commit()
        # The embedded worker thread (started by the enqueue) may hold a job: wait for it
        # too, or the process would exit under it and leave its run queued for good.
        deadline = time.monotonic() + app.config["TENANTPILOT_JOB_TIMEOUT"]
        while True:
            make_worker(app, thread=True).work(burst=True, logging_level="WARNING")
            if not _jobs_in_flight(app) or time.monotonic() > deadline:
                return
            time.sleep(0.1)


def _jobs_in_flight(app) -> bool:
    return any(q.count or q.started_job_registry.count for q in all_queues(app))


_embedded_lock = threading.Lock()


def ensure_embedded_worker(app) -> None:
    """Start the in-process worker thread on first use (embedded mode only)."""
    state = app.extensions["tenantpilot"]
    if not state.embedded or not app.config["TENANTPILOT_EMBEDDED_WORKER"]:
        return
    with _embedded_lock:
        if state.worker_thread and state.worker_thread.is_alive():
            return
        worker = make_worker(app, thread=True)

        def loop():
            while True:  # work() returns on idle in burst mode; keep the thread serving
                try:
                    worker.work(burst=False, logging_level="WARNING")
                except Exception:
                    log.exception("embedded worker crashed; restarting")
                    time.sleep(1)

        state.worker_thread = threading.Thread(target=loop, name="tenantpilot-embedded-worker", daemon=True)
        state.worker_thread.start()
