"""Server-side sign-in sessions for both planes.

The plane's signed cookie carries a random session id (``sid``); ``auth_sessions`` keeps
its SHA-256 with the plane, the person, when it started and when it was last used. The
session is checked on every request (``load``), so it ends at once when:

- the person signs out (that session), or chooses "Sign out everywhere" (all of theirs);
- the password changes (every session created before ``password_changed_at``);
- the person is deactivated (the identity loader refuses inactive people);
- it has been idle, or open, longer than the plane allows (``TENANTPILOT_<PLANE>_SESSION_
  IDLE_MINUTES`` / ``…_MAX_HOURS``; the platform plane's defaults are shorter).

``last_seen_at`` is written at most once a minute per session.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, request, session
from sqlalchemy import delete, or_, select, update

from .extensions import db
from .models import AuthSession
from .timeutil import utcnow

SEEN_RESOLUTION = timedelta(seconds=60)
PLANES = ("admin", "system")


def lifetimes(plane: str) -> tuple[timedelta, timedelta]:
    """(idle, absolute) of a plane's sessions; the defaults live in config.py."""
    cfg = current_app.config
    return (timedelta(minutes=cfg[f"TENANTPILOT_{plane.upper()}_SESSION_IDLE_MINUTES"]),
            timedelta(hours=cfg[f"TENANTPILOT_{plane.upper()}_SESSION_MAX_HOURS"]))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(plane: str, user) -> None:
    """A fresh session at sign-in: everything from before (the CSRF secret included) is
    dropped, so a token planted before sign-in is worth nothing after it."""
    session.clear()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(AuthSession(id=_digest(token), plane=plane, user_id=user.id, created_at=now, last_seen_at=now,
                               ip=request.remote_addr, user_agent=(request.user_agent.string or "")[:200]))
    db.session.commit()
    session["sid"] = token


def current_id() -> str | None:
    token = session.get("sid")
    return _digest(token) if isinstance(token, str) else None


def load(plane: str, model, user_id: int):
    """The signed-in person of this request, or None: ``model`` row ``user_id`` if this
    request's session is a live session of theirs on ``plane``. The person and the session
    row come back in one query (it runs on every request); refreshes the session's
    last-seen time at most once a minute."""
    sid = current_id()
    if sid is None:
        return None
    found = db.session.execute(
        select(model, AuthSession).join(AuthSession, AuthSession.user_id == model.id)
        .where(model.id == user_id, AuthSession.id == sid)).first()
    if found is None:
        return None
    user, row = found
    now = utcnow()
    idle, absolute = lifetimes(plane)
    if (not user.is_active or row.plane != plane or row.revoked_at is not None
            or now - row.last_seen_at > idle or now - row.created_at > absolute
            or (user.password_changed_at is not None and row.created_at < user.password_changed_at)):
        return None
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        # The identity loader runs before the view has changed anything (the plane
        # decorators ask for current_user first), so this commit carries only this row.
        row.last_seen_at = now
        db.session.commit()
    return user


def end_current() -> None:
    """Sign-out of this browser: the session row is revoked and the cookie emptied."""
    sid = current_id()
    if sid is not None:
        db.session.execute(update(AuthSession).where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        db.session.commit()
    session.clear()


def end_all(plane: str, user_id: int, *, except_current: bool = False) -> int:
    """Revoke every live session of a person on a plane; returns how many."""
    q = update(AuthSession).where(AuthSession.plane == plane, AuthSession.user_id == user_id,
                                  AuthSession.revoked_at.is_(None))
    if except_current and current_id():
        q = q.where(AuthSession.id != current_id())
    count = db.session.execute(q.values(revoked_at=utcnow())).rowcount
    db.session.commit()
    return count


def active(plane: str, user_id: int) -> list[AuthSession]:
    """Live sessions of a person, newest use first (the account page lists them)."""
    idle, absolute = lifetimes(plane)
    now = utcnow()
    return list(db.session.scalars(
        select(AuthSession).where(AuthSession.plane == plane, AuthSession.user_id == user_id,
                                  AuthSession.revoked_at.is_(None), AuthSession.last_seen_at > now - idle,
                                  AuthSession.created_at > now - absolute)
        .order_by(AuthSession.last_seen_at.desc())))


def prune() -> int:
    """Scheduled: delete sessions that can no longer be used (revoked, idle or past the
    absolute lifetime of the longest-lived plane)."""
    now = utcnow()
    oldest = now - max(lifetimes(p)[1] for p in PLANES)
    stale = now - max(lifetimes(p)[0] for p in PLANES)
    count = db.session.execute(delete(AuthSession).where(or_(
        AuthSession.created_at < oldest, AuthSession.last_seen_at < stale,
        AuthSession.revoked_at < now - timedelta(hours=1)))).rowcount
    db.session.commit()
    return count
