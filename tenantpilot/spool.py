"""A durable spool for rows the database could not take (audit events, telemetry events).

``append(kind, record)`` keeps the record outside the database:

- in Redis (a list per kind, shared by every process and surviving the death of the one
  that wrote it) when the app runs on real Redis;
- otherwise, or if Redis refuses too, in an append-only JSON-lines file under the
  instance folder (``spool/<kind>.jsonl``, ``flock``-ed), which is what embedded mode uses.

``replay(kind, handler)`` hands every spooled record to ``handler`` in the order they were
written; the scheduler runs it for every kind (``ops.replay_spool``). Handlers insert by
the record's ``event_uid``, so a record replayed twice (a replay that died half-way) is
written once. A record whose handler fails stays spooled, in order, for the next replay.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from flask import current_app
from sqlalchemy import event

log = logging.getLogger("tenantpilot.spool")
_ON_COMMIT = "tenantpilot_spool_on_commit"


def _redis_key(kind: str) -> str:
    return f"{current_app.config['TENANTPILOT_QUEUE_PREFIX']}:spool:{kind}"


def _path(kind: str) -> Path:
    folder = Path(current_app.instance_path) / "spool"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}.jsonl"


@contextmanager
def _locked(path: Path):
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _uses_redis() -> bool:
    return not current_app.extensions["tenantpilot"].embedded


def append(kind: str, record: dict) -> None:
    line = json.dumps(record, default=str, sort_keys=True)
    if _uses_redis():
        try:
            current_app.extensions["tenantpilot"].redis.rpush(_redis_key(kind), line)
            log.warning("spooled a %s record (Redis)", kind)
            return
        except Exception:
            log.exception("Redis refused the %s spool; using the instance folder", kind)
    with _locked(_path(kind)) as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("spooled a %s record (file)", kind)


def append_on_commit(session, kind: str, record: dict) -> None:
    """Spool ``record`` once ``session``'s transaction commits; forget it if it rolls back
    (a row that belonged to an action that did not happen)."""
    waiting = session.info.setdefault(_ON_COMMIT, [])
    waiting.append((kind, record))
    if not session.info.get(_ON_COMMIT + "_listening"):
        event.listen(session, "after_commit", _append_waiting)
        event.listen(session, "after_rollback", _drop_waiting)
        session.info[_ON_COMMIT + "_listening"] = True


def _append_waiting(session) -> None:
    for kind, record in session.info.pop(_ON_COMMIT, []):
        append(kind, record)


def _drop_waiting(session) -> None:
    session.info.pop(_ON_COMMIT, None)


def pending(kind: str) -> int:
    """How many records wait (both places)."""
    count = 0
    if _uses_redis():
        try:
            r = current_app.extensions["tenantpilot"].redis
            count += r.llen(_redis_key(kind)) + sum(r.llen(k) for k in r.scan_iter(match=_redis_key(kind) + ":draining:*"))
        except Exception:
            pass
    path = _path(kind)
    if path.exists():
        with _locked(path) as fh:
            fh.seek(0)
            count += sum(1 for line in fh if line.strip())
    return count


def replay(kind: str, handler) -> int:
    """Feed every spooled record of ``kind`` to ``handler``; returns how many were handled."""
    done = _replay_file(kind, handler)
    if _uses_redis():
        done += _replay_redis(kind, handler)
    return done


def _replay_file(kind: str, handler) -> int:
    path = _path(kind)
    if not path.exists():
        return 0
    with _locked(path) as fh:
        fh.seek(0)
        lines = [line for line in fh.read().splitlines() if line.strip()]
        handled = 0
        try:
            handled = _feed(kind, lines, handler)
        finally:
            fh.seek(0)
            fh.truncate()
            fh.writelines(line + "\n" for line in lines[handled:])
            fh.flush()
            os.fsync(fh.fileno())
    return handled


def _replay_redis(kind: str, handler) -> int:
    r = current_app.extensions["tenantpilot"].redis
    live = _redis_key(kind)
    # Lists claimed by an earlier replay that did not finish come first: they are older
    # (their names sort by claim time).
    batches = sorted(k.decode() if isinstance(k, bytes) else k for k in r.scan_iter(match=live + ":draining:*"))
    claimed = f"{live}:draining:{time.time_ns():020d}"
    try:
        r.rename(live, claimed)  # atomic: new records go to a fresh list meanwhile
        batches.append(claimed)
    except Exception:
        pass  # nothing spooled
    handled = 0
    for key in batches:
        items = r.lrange(key, 0, -1)
        done = _feed(kind, items, handler)
        if done < len(items):
            r.ltrim(key, done, -1)  # the rest waits, in order, for the next replay
            return handled + done
        r.delete(key)
        handled += done
    return handled


def _feed(kind: str, records, handler) -> int:
    """Hand the records to ``handler`` in order until one fails; returns how many were handled."""
    done = 0
    try:
        for raw in records:
            handler(json.loads(raw))
            done += 1
    except Exception:
        log.exception("replay of a spooled %s record failed; it stays spooled", kind)
    return done
