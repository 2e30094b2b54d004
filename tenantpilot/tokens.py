"""API tokens of both planes: create (the secret is shown once), verify, revoke.

A token is ``tp<plane letter>_<43 random characters>``; only its SHA-256 is stored. It
acts with its owner's identity and at most the capabilities chosen at creation, which
must be a subset of what the owner holds then; every request intersects them with what
the owner holds *now*, so a token loses what its owner loses (a removed capability, a
removed membership, a deactivated account).

Every create and revoke is audited, and so is every refusal of a known token (expired,
revoked, owner inactive, capability missing): those are the events an operator looks
for after an incident. A string that is no token at all gets a 401 and no audit row (it
names nobody, and logging it would let anyone flood the audit log).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from . import audit
from .actors import Actor
from .extensions import db
from .models import ApiToken, PlatformUser, User
from .timeutil import utcnow

PLANES = {"system": "s", "admin": "a"}
# Capabilities that only open a plane and allow no action by themselves: a token has them
# whenever its owner does, so nobody has to remember to tick them.
GATES = {"system": frozenset({"platform.access_system_panel"}), "admin": frozenset()}
AUDIT_PREFIX = {"system": "platform", "admin": "tenant"}
MAX_DAYS = 366
DEFAULT_DAYS = 90
NAME_MAX = 100
# last_used_at/ip are written at most this often per token: a busy CI job must not turn
# every GET into a write.
USED_RESOLUTION = timedelta(seconds=60)


class TokenError(ValueError):
    """A create/revoke that cannot be done: ``errors`` maps field → message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def owner_model(plane: str):
    return PlatformUser if plane == "system" else User


def held_capabilities(plane: str, user) -> frozenset[str]:
    """What the owner holds now: platform capabilities, or the union of the person's
    workspace roles (a tenant token may be narrowed further per request by membership)."""
    if not user.is_active:
        return frozenset()
    if plane == "system":
        return frozenset(user.capabilities or ())
    caps: set[str] = set()
    for membership in user.memberships:
        caps |= membership.capabilities
    return frozenset(caps)


def grantable(plane: str, user) -> list[str]:
    """What a token of ``user`` can be given (the gates come with it anyway)."""
    return sorted(held_capabilities(plane, user) - GATES[plane])


def token_capabilities(plane: str, token: ApiToken) -> frozenset[str]:
    return frozenset(token.capabilities or ()) | GATES[plane]


def owner_actor(plane: str, user, token: ApiToken | None = None) -> Actor:
    base = Actor.platform(user) if plane == "system" else Actor.human(user)
    if token is None:
        return base
    caps = token_capabilities(plane, token)
    return Actor(base.kind, base.id, base.name, base.email, base.capabilities & caps, False,
                 token=token_label(token), token_capabilities=caps)


def token_label(token: ApiToken) -> dict:
    """How audit rows and run contexts name a token: never its secret."""
    return {"id": token.id, "name": token.name, "prefix": token.prefix}


def create(plane: str, user, name: str, capabilities, days: int | None, actor: Actor) -> tuple[ApiToken, str]:
    """A new token of ``user`` → (row, secret). The secret is returned once and never
    stored. Raises TokenError with field errors."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Give the token a name (what uses it, e.g. “CI deploy job”)."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    caps = list(dict.fromkeys(capabilities or ()))
    held = held_capabilities(plane, user)
    if not caps:
        errors["capabilities"] = "Choose at least one capability."
    elif not set(caps) <= held:
        errors["capabilities"] = "A token can only have capabilities you hold: " + ", ".join(
            sorted(set(caps) - held)) + "."
    if days is None:
        days = DEFAULT_DAYS
    if not 1 <= days <= MAX_DAYS:
        errors["expires_in_days"] = f"Choose from 1 to {MAX_DAYS} days."
    if errors:
        raise TokenError(errors)
    secret = f"tp{PLANES[plane]}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    row = ApiToken(plane=plane, user_id=user.id, name=name, token_hash=digest(secret), prefix=secret[:10],
                   capabilities=caps, created_at=now, expires_at=now + timedelta(days=days))
    db.session.add(row)
    db.session.flush()
    audit.record(f"{AUDIT_PREFIX[plane]}.api_token.created", actor=actor, target=("api_token", row.id, name),
                 summary=f"API token “{name}” created",
                 metadata={"api_token": token_label(row), "owner_id": user.id, "capabilities": caps,
                           "expires_at": row.expires_at.isoformat()}, commit=False)
    db.session.commit()
    return row, secret


def revoke(plane: str, token_id: int, actor: Actor, owner_id: int | None = None) -> ApiToken:
    """Revoke a token (of ``owner_id`` when given: people revoke only their own). A second
    revoke changes nothing and writes no second audit row."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.plane != plane or (owner_id is not None and row.user_id != owner_id):
        raise TokenError({"token": "No such token."})
    done = db.session.execute(update(ApiToken).where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None))
                              .values(revoked_at=utcnow())).rowcount
    if done:
        audit.record(f"{AUDIT_PREFIX[plane]}.api_token.revoked", actor=actor, target=("api_token", row.id, row.name),
                     summary=f"API token “{row.name}” revoked", metadata={"api_token": token_label(row)}, commit=False)
    db.session.commit()
    db.session.refresh(row)
    return row


def tokens_of(plane: str, user_id: int | None = None) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.plane == plane).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(db.session.scalars(query))


def state(row: ApiToken, now=None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= now else "active"


@dataclass(frozen=True)
class Verified:
    token: ApiToken | None
    user: object | None
    problem: str | None  # None | "invalid" | "expired" | "revoked" | "owner_inactive" | "wrong_plane"


def verify(plane: str, secret: str, ip: str | None) -> Verified:
    """The token and its owner for a bearer secret, or why not."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret))) if secret else None
    if row is None:
        return Verified(None, None, "invalid")
    if row.plane != plane:
        return Verified(row, None, "wrong_plane")
    now = utcnow()
    problem = {"revoked": "revoked", "expired": "expired"}.get(state(row, now))
    user = db.session.get(owner_model(plane), row.user_id)
    if problem is None and (user is None or not user.is_active):
        problem = "owner_inactive"
    if problem is None and (row.last_used_at is None or now - row.last_used_at >= USED_RESOLUTION):
        db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now, last_used_ip=ip))
        db.session.commit()
    return Verified(row, user if problem is None else None, problem)


def audit_denied(plane: str, row: ApiToken, reason: str, detail: dict | None = None) -> None:
    """A known token was refused: who it belongs to, why, and for what request."""
    from flask import has_request_context, request

    user = db.session.get(owner_model(row.plane), row.user_id)
    actor = owner_actor(row.plane, user, row) if user is not None else Actor.system("API")
    # The endpoint too: a long path reads as an opaque string to the audit sanitizer.
    where = ({"method": request.method, "path": request.path[:200], "endpoint": request.endpoint}
             if has_request_context() else {})
    audit.record(f"{AUDIT_PREFIX[row.plane]}.api_token.denied", actor=actor, status="blocked",
                 target=("api_token", row.id, row.name), summary=f"API token “{row.name}” refused: {reason}",
                 metadata={"api_token": token_label(row), "reason": reason, **where, **(detail or {})})
