"""Product usage telemetry (SPEC 6): the recorder, the window summary, retention.

The recorder is the only write path. It validates against the event catalog (what the
plugins registered through ``tenantpilot_register_event_families``) and accepts tokens,
ints, bools and timestamps only, so free text, e-mails and payloads cannot get in. It
never raises: a failure is logged and counted, and the user's action stands. Two ways in:
``record`` writes in a transaction of its own, after the source action committed;
``record_in_transaction`` writes in the action's own transaction (a savepoint), so the
event commits exactly when the action does, in the same commit (the start seam).

Reading: a window always ends now. The summary is exact and cheap at any table size:
- family counts = the hourly rollup for the whole hours of the window (kept up to date in
  the recording transaction, current hour included) + the raw events of the window's
  first, partial hour (at most one hour of rows, by the occurred_at index);
- active workspaces = workspaces whose latest event is inside the window (one indexed
  range count over product_usage_workspaces).

Retention: on PostgreSQL the events table is partitioned by month (migration 0012,
tenantpilot.partitions); the scheduler keeps the next months created, and prune drops
whole months older than the window and deletes only the boundary month's old rows.
SQLite keeps one plain table and deletes in batches.
"""
from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from flask import current_app
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.exc import OperationalError

from . import partitions, spool
from .dashboard import WINDOWS  # the dashboard's windows: one selector drives every widget
from .extensions import db
from .models import ProductUsageEvent, ProductUsageHourly, ProductUsageWorkspace
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.telemetry")
SPOOL_KIND = "telemetry"
TOKEN_RE = re.compile(r"^[A-Za-z0-9._:+/-]{1,120}$")
PRUNE_BATCH = 10_000
EVENTS_TABLE = "product_usage_events"
PARTITIONS_AHEAD = 3  # months of event partitions kept created ahead (PostgreSQL)


class TelemetryError(ValueError):
    """An event the recorder refuses (unknown event, disallowed key, unsafe value)."""


# --- validation -----------------------------------------------------------------------

def _token(value: Any, what: str) -> str:
    if not isinstance(value, str) or not TOKEN_RE.match(value):
        raise TelemetryError(f"{what} must be a machine-safe token ([A-Za-z0-9._:+/-], at most 120 characters)")
    return value


def _metadata_value(key: str, value: Any):
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return _token(value, f"metadata value of {key!r}")
    raise TelemetryError(f"metadata value of {key!r} must be an int, a bool, a timestamp or a token, "
                         f"not {type(value).__name__}")


def validate(event_name: str, *, workspace_id: int, tenant_id: int, user_id: int | None = None,
             subject_type: str | None = None, subject_id: str | None = None,
             metadata: Mapping[str, Any] | None = None) -> dict:
    """The row the recorder would write, or TelemetryError saying what is wrong."""
    family = current_app.extensions["tenantpilot"].registry.event_families.get(event_name)
    if family is None:
        raise TelemetryError(f"unknown telemetry event {event_name!r}")
    for name, value in (("workspace_id", workspace_id), ("tenant_id", tenant_id)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TelemetryError(f"{name} is required: telemetry is tenant-bound")
    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)):
        raise TelemetryError("user_id must be an int")
    if not isinstance(metadata or {}, Mapping):
        raise TelemetryError("metadata must be a mapping")
    clean = {}
    for key, value in (metadata or {}).items():
        if key not in family.metadata_keys:
            raise TelemetryError(f"metadata key {key!r} is not allowed for {event_name}")
        if value is not None:  # None is dropped, not stored
            clean[key] = _metadata_value(key, value)
    return {
        "workspace_id": workspace_id, "tenant_id": tenant_id, "user_id": user_id,
        "event_name": event_name, "feature_area": family.feature_area,
        "subject_type": None if subject_type is None else _token(subject_type, "subject_type"),
        "subject_id": None if subject_id is None else _token(subject_id, "subject_id"),
        "meta": clean,
    }


# --- recording ------------------------------------------------------------------------

def _upsert(conn, table, values: dict, keys: list[str], set_):
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=set_(stmt.excluded)))


def write(conn, row: dict, occurred_at: datetime) -> None:
    """Insert one validated row and fold it into the rollups, on ``conn``'s transaction."""
    conn.execute(insert(ProductUsageEvent.__table__).values(
        workspace_id=row["workspace_id"], tenant_id=row["tenant_id"], user_id=row["user_id"],
        event_name=row["event_name"], feature_area=row["feature_area"], subject_type=row["subject_type"],
        subject_id=row["subject_id"], metadata=row["meta"], occurred_at=occurred_at, created_at=utcnow(),
        event_uid=row.get("event_uid")))
    hourly, workspaces = ProductUsageHourly.__table__, ProductUsageWorkspace.__table__
    _upsert(conn, hourly, {"bucket_start": floor_hour(occurred_at), "event_name": row["event_name"], "count": 1},
            ["bucket_start", "event_name"], lambda excluded: {"count": hourly.c.count + 1})
    _upsert(conn, workspaces, {"workspace_id": row["workspace_id"], "last_event_at": occurred_at}, ["workspace_id"],
            lambda excluded: {"last_event_at": case(
                (excluded.last_event_at > workspaces.c.last_event_at, excluded.last_event_at),
                else_=workspaces.c.last_event_at)})


def record(event_name: str, *, workspace_id: int, tenant_id: int, user_id: int | None = None,
           subject_type: str | None = None, subject_id: str | None = None,
           metadata: Mapping[str, Any] | None = None, occurred_at: datetime | None = None) -> bool:
    """Record one event; call it after the source action committed (this commits the
    session). Returns whether it was recorded. Never raises: telemetry must not break the
    user's action."""
    try:
        row = validate(event_name, workspace_id=workspace_id, tenant_id=tenant_id, user_id=user_id,
                       subject_type=subject_type, subject_id=subject_id, metadata=metadata)
        now = utcnow()
        if occurred_at is not None and occurred_at > now:
            # Windows end now: a future event would sit in the rollup but not in the window.
            raise TelemetryError("occurred_at must not be in the future")
    except Exception as exc:
        _count_error(event_name, exc)  # refused: not a valid event, nothing to keep
        return False
    row["event_uid"] = uuid.uuid4().hex
    try:
        # A savepoint of the caller's session, then a commit: the caller's action is
        # already committed (the contract), and one connection keeps SQLite (embedded
        # mode) from refusing a second writer.
        with db.session.begin_nested():
            write(db.session.connection(), row, occurred_at or now)
        db.session.commit()
        return True
    except Exception as exc:
        # A valid event the database could not take: spooled and replayed (by its
        # event_uid, so at most once), never dropped.
        db.session.rollback()
        log.exception("telemetry event not written; spooled for replay", extra={"event": event_name})
        try:
            spool.append(SPOOL_KIND, {**row, "occurred_at": (occurred_at or now).isoformat()})
        except Exception:
            _count_error(event_name, exc)
        return True


def record_in_transaction(event_name: str, *, workspace_id: int, tenant_id: int, user_id: int | None = None,
                          subject_type: str | None = None, subject_id: str | None = None,
                          metadata: Mapping[str, Any] | None = None) -> str | None:
    """Record one event inside the caller's open transaction (does not commit): the event
    commits exactly when the action it counts does, and costs that action no commit of
    its own (the start seam: run row and event in one commit). Returns the event's uid
    (for ``retract``), or None when the event was refused.

    Never raises and never poisons the caller's transaction: the rows go in a SAVEPOINT;
    a valid event the database refused is spooled when the caller commits (and dropped if
    the caller rolls back: an action that did not happen is not counted)."""
    try:
        row = validate(event_name, workspace_id=workspace_id, tenant_id=tenant_id, user_id=user_id,
                       subject_type=subject_type, subject_id=subject_id, metadata=metadata)
    except Exception as exc:
        _count_error(event_name, exc)
        return None
    now = utcnow()
    row["event_uid"] = uuid.uuid4().hex
    try:
        with db.session.begin_nested():
            write(db.session.connection(), row, now)
    except Exception:
        log.exception("telemetry event not written; spooled for replay if the action commits",
                      extra={"event": event_name})
        spool.append_on_commit(db.session(), SPOOL_KIND, {**row, "occurred_at": now.isoformat()})
    return row["event_uid"]


def retract(event_uid: str) -> None:
    """Take back an event recorded with its action when the action failed after its commit
    (the start seam: the run could not be enqueued). Removes the row and corrects both
    rollups, in the caller's transaction (which commits it). Never raises."""
    events, hourly, workspaces = (ProductUsageEvent.__table__, ProductUsageHourly.__table__,
                                  ProductUsageWorkspace.__table__)
    try:
        with db.session.begin_nested():
            conn = db.session.connection()
            found = conn.execute(delete(events).where(events.c.event_uid == event_uid)
                                 .returning(events.c.event_name, events.c.workspace_id, events.c.occurred_at)).first()
            if found is None:
                return  # never written (or spooled): nothing to take back here
            name, workspace_id, occurred_at = found
            conn.execute(hourly.update().where(hourly.c.bucket_start == floor_hour(occurred_at),
                                               hourly.c.event_name == name).values(count=hourly.c.count - 1))
            latest = conn.execute(select(func.max(events.c.occurred_at))
                                  .where(events.c.workspace_id == workspace_id)).scalar()
            if latest is None:
                conn.execute(delete(workspaces).where(workspaces.c.workspace_id == workspace_id))
            else:
                conn.execute(workspaces.update().where(workspaces.c.workspace_id == workspace_id)
                             .values(last_event_at=latest))
    except Exception as exc:
        _count_error("retract", exc)


def replay_one(record: dict) -> None:
    """Write one spooled event (and its rollups) unless its event_uid is there; commits."""
    if db.session.scalar(select(ProductUsageEvent.id).where(ProductUsageEvent.event_uid == record["event_uid"])):
        return
    write(db.session.connection(), record, datetime.fromisoformat(record["occurred_at"]))
    db.session.commit()


def replay_spool() -> int:
    """Scheduled: write the spooled events, in order."""
    return spool.replay(SPOOL_KIND, replay_one)


def _count_error(event_name: str, exc: Exception) -> None:
    log.error("telemetry event not recorded", extra={"event": str(event_name)[:120], "error": type(exc).__name__,
                                                      "reason": str(exc)[:200]})
    try:
        state = current_app.extensions["tenantpilot"]
        state.telemetry_errors += 1
        state.redis.incr(f"{current_app.config['TENANTPILOT_QUEUE_PREFIX']}:telemetry:errors")
    except Exception:
        pass  # the log line above is the record of last resort


def error_count() -> int:
    """Recording failures across processes (Redis), or this process's count."""
    try:
        state = current_app.extensions["tenantpilot"]
        value = state.redis.get(f"{current_app.config['TENANTPILOT_QUEUE_PREFIX']}:telemetry:errors")
        return int(value or 0)
    except Exception:
        return current_app.extensions["tenantpilot"].telemetry_errors


# --- reading --------------------------------------------------------------------------

def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + timedelta(hours=1)


@dataclass(frozen=True)
class Summary:
    window: str
    label: str
    since: datetime
    counts: dict  # event name → events in the window (every registered family, zeros included)
    active_workspaces: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summary(window: str, now: datetime | None = None) -> Summary:
    """Exact family counts and active workspaces for [now − window, now]."""
    delta, label = WINDOWS[window].delta, WINDOWS[window].label
    now = now or utcnow()
    since = now - delta
    first_full = ceil_hour(since)
    counts = {name: 0 for name in current_app.extensions["tenantpilot"].registry.event_families}
    rolled = db.session.execute(
        select(ProductUsageHourly.event_name, func.sum(ProductUsageHourly.count))
        .where(ProductUsageHourly.bucket_start >= first_full).group_by(ProductUsageHourly.event_name))
    edge = db.session.execute(
        select(ProductUsageEvent.event_name, func.count())
        .where(ProductUsageEvent.occurred_at >= since, ProductUsageEvent.occurred_at < first_full)
        .group_by(ProductUsageEvent.event_name))
    for name, n in list(rolled) + list(edge):
        counts[name] = counts.get(name, 0) + int(n)
    active = db.session.scalar(select(func.count()).select_from(ProductUsageWorkspace)
                               .where(ProductUsageWorkspace.last_event_at >= since))
    return Summary(window, label, since, counts, int(active or 0))


def raw_summary(window: str, now: datetime | None = None) -> Summary:
    """The same figures counted directly over the raw events (tests and the benchmark
    compare the two; the dashboard never uses this)."""
    delta, label = WINDOWS[window].delta, WINDOWS[window].label
    now = now or utcnow()
    since = now - delta
    counts = {name: 0 for name in current_app.extensions["tenantpilot"].registry.event_families}
    for name, n in db.session.execute(
            select(ProductUsageEvent.event_name, func.count())
            .where(ProductUsageEvent.occurred_at >= since, ProductUsageEvent.occurred_at <= now)
            .group_by(ProductUsageEvent.event_name)):
        counts[name] = counts.get(name, 0) + int(n)
    active = db.session.scalar(select(func.count(func.distinct(ProductUsageEvent.workspace_id)))
                               .where(ProductUsageEvent.occurred_at >= since, ProductUsageEvent.occurred_at <= now))
    return Summary(window, label, since, counts, int(active or 0))


SPARK_BUCKETS = {"24h": (timedelta(hours=1), 24), "7d": (timedelta(hours=6), 28), "30d": (timedelta(days=1), 30)}


def series(window: str, now: datetime | None = None) -> dict[str, list[int]]:
    """Events per bucket (oldest first) for each family: the sparklines' trend. Read from
    the hourly rollup, so the first bucket may include minutes just before the window."""
    step, n = SPARK_BUCKETS[window]
    now = now or utcnow()
    start = floor_hour(now) + timedelta(hours=1) - step * n
    out = {name: [0] * n for name in current_app.extensions["tenantpilot"].registry.event_families}
    for bucket, name, count in db.session.execute(
            select(ProductUsageHourly.bucket_start, ProductUsageHourly.event_name, ProductUsageHourly.count)
            .where(ProductUsageHourly.bucket_start >= start)):
        i = int((bucket - start) / step)
        if name in out and 0 <= i < n:
            out[name][i] += count
    return out


# --- retention and maintenance -------------------------------------------------------

def _hour_expr(column):
    if db.engine.dialect.name == "postgresql":
        return func.date_trunc("hour", column)
    # SQLite stores SQLAlchemy DateTimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)


def _rebuild(since: datetime | None = None, until: datetime | None = None) -> None:
    """Recompute the hourly rollup for [since, until) hour buckets from the raw events."""
    where = []
    if since is not None:
        where.append(ProductUsageEvent.occurred_at >= since)
    if until is not None:
        where.append(ProductUsageEvent.occurred_at < until)
    cond = [ProductUsageHourly.bucket_start >= since] if since is not None else []
    cond += [ProductUsageHourly.bucket_start < until] if until is not None else []
    db.session.execute(delete(ProductUsageHourly).where(*cond))
    hour = _hour_expr(ProductUsageEvent.occurred_at).label("bucket_start")
    db.session.execute(insert(ProductUsageHourly).from_select(
        ["bucket_start", "event_name", "count"],
        select(hour, ProductUsageEvent.event_name, func.count()).where(*where)
        .group_by(hour, ProductUsageEvent.event_name)))


def rebuild_rollups() -> None:
    """Rebuild both rollups from the raw events (after a bulk load; `flask telemetry
    rebuild-rollups`). The recorder keeps them current otherwise."""
    _rebuild()
    db.session.execute(delete(ProductUsageWorkspace))
    db.session.execute(insert(ProductUsageWorkspace).from_select(
        ["workspace_id", "last_event_at"],
        select(ProductUsageEvent.workspace_id, func.max(ProductUsageEvent.occurred_at))
        .group_by(ProductUsageEvent.workspace_id)))
    db.session.commit()


def prune(days: int, now: datetime | None = None) -> int:
    """Delete events older than ``days`` days; returns how many. Touches only the
    telemetry tables (events and their rollups).

    PostgreSQL (partitioned by month): the months wholly before the cutoff are dropped,
    and only the rows of the boundary month (and any in DEFAULT) are deleted, so a day's
    retention is a catalog change plus at most a day's rows, not a bloating delete of a
    month. SQLite (plain table): deleted in batches."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise TelemetryError("days must be at least 1")
    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = _drop_partitions_before(cutoff)
    while True:
        ids = select(ProductUsageEvent.id).where(ProductUsageEvent.occurred_at < cutoff).limit(PRUNE_BATCH)
        # occurred_at again on the outer delete: PostgreSQL then only visits the
        # partitions that can hold such rows.
        n = db.session.execute(delete(ProductUsageEvent).where(
            ProductUsageEvent.occurred_at < cutoff, ProductUsageEvent.id.in_(ids))).rowcount
        db.session.commit()
        deleted += n
        if n < PRUNE_BATCH:
            break
    # Whole hours before the cutoff go; the hour holding the cutoff is recounted.
    boundary = floor_hour(cutoff)
    db.session.execute(delete(ProductUsageHourly).where(ProductUsageHourly.bucket_start < boundary))
    _rebuild(boundary, boundary + timedelta(hours=1))
    # A workspace whose latest event is older than the cutoff has no events left.
    db.session.execute(delete(ProductUsageWorkspace).where(ProductUsageWorkspace.last_event_at < cutoff))
    db.session.commit()
    return deleted


def _drop_partitions_before(cutoff: datetime) -> int:
    """Drop the monthly partitions wholly older than ``cutoff``; the rows they held. If
    the parent cannot be locked in time (a long reader), nothing is dropped and the
    batched delete after this does the work this once."""
    conn = db.session.connection()
    if not partitions.is_partitioned(conn, EVENTS_TABLE):
        return 0
    try:
        dropped = partitions.drop_before(conn, EVENTS_TABLE, cutoff)
        db.session.commit()
    except OperationalError:
        db.session.rollback()
        log.warning("telemetry partitions not dropped (lock timeout); deleting rows instead")
        return 0
    if dropped:
        log.info("telemetry partitions dropped", extra={"partitions": [name for name, _ in dropped]})
    return sum(rows for _, rows in dropped)


def ensure_partitions(ahead_months: int = PARTITIONS_AHEAD, now: datetime | None = None) -> list[str]:
    """PostgreSQL: create the monthly event partitions from this month to
    ``ahead_months`` months ahead that are missing; returns their names (none on SQLite).
    Scheduled daily, so inserts land in their month and the DEFAULT partition stays empty;
    rows that did land in DEFAULT for a new month are moved into it."""
    conn = db.session.connection()
    if not partitions.is_partitioned(conn, EVENTS_TABLE):
        return []
    this_month = partitions.month_start(now or utcnow())
    made = partitions.ensure_months(conn, EVENTS_TABLE, "occurred_at", this_month,
                                    partitions.add_months(this_month, ahead_months))
    db.session.commit()
    if made:
        log.info("telemetry partitions created", extra={"partitions": made})
    return made


def prune_job() -> None:
    """The scheduler's daily retention run."""
    days = current_app.config["TENANTPILOT_PRODUCT_USAGE_EVENT_RETENTION_DAYS"]
    deleted = prune(days)
    log.info("telemetry pruned", extra={"deleted": deleted, "days": days})


def seed_demo_events(event_name: str, metadata, count: int, seed: int = 0, days: int = 90) -> int:
    """Demo data (``flask demo seed``): ``count`` events of one family spread over the last
    ``days`` days across the demo tenants, busier on weekdays and office hours and growing
    towards today. ``metadata(rng)`` returns one event's metadata. Returns how many."""
    import random

    from .models import Tenant

    rng = random.Random(f"{event_name}:{seed}")
    tenants = db.session.execute(select(Tenant.id, Tenant.workspace_id)
                                 .where(Tenant.is_platform.is_(False)).order_by(Tenant.id)).all()
    if not tenants:
        return 0
    now, written = utcnow(), 0
    conn = db.session.connection()  # one transaction for the whole family
    while written < count:
        age = timedelta(days=days * rng.random() ** 1.6)  # more events recently
        when = now - age
        busy = when.weekday() < 5 and 8 <= when.hour < 19
        if not busy and rng.random() < 0.7:
            continue
        tenant_id, workspace_id = tenants[int(len(tenants) * rng.random() ** 1.3)]  # some tenants busier
        row = validate(event_name, workspace_id=workspace_id, tenant_id=tenant_id, metadata=metadata(rng))
        write(conn, row, when)
        written += 1
    db.session.commit()
    return written

