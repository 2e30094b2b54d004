"""The one operational-control evaluator (SPEC 4), used by the start seam.

One indexed query, fresh on every call: no cache that could let a stale page start a
blocked action. Expired rows are ignored, so an expired pause is enabled again at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, or_, select

from .extensions import db
from .models import OperationalControlActivation as Activation
from .timeutil import utcnow


@dataclass(frozen=True)
class ControlDecision:
    control_key: str | None
    effective_state: str  # enabled | paused
    matched_scope: str = "none"  # none | global | workspace
    workspace_id: int | None = None
    reason: str | None = None
    expires_at: datetime | None = None
    activation_id: int | None = None

    @property
    def paused(self) -> bool:
        return self.effective_state == "paused"

    def as_metadata(self) -> dict:
        return {
            "control_key": self.control_key,
            "scope_type": self.matched_scope,
            "workspace_id": self.workspace_id,
            "reason": self.reason,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def evaluate(control_key: str | None, workspace_id: int | None = None) -> ControlDecision:
    """Decision for one key in one workspace (None: the platform-wide view, global only).
    A global pause wins over a workspace pause."""
    if not control_key:
        return ControlDecision(None, "enabled")
    scope_match = Activation.scope_type == "global"
    if workspace_id is not None:
        scope_match = or_(scope_match, (Activation.scope_type == "workspace") & (Activation.workspace_id == workspace_id))
    row = db.session.execute(
        select(Activation)
        .where(Activation.control_key == control_key, scope_match,
               or_(Activation.expires_at.is_(None), Activation.expires_at > utcnow()))
        .order_by(case((Activation.scope_type == "global", 0), else_=1))
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        return ControlDecision(control_key, "enabled")
    return ControlDecision(control_key, "paused", row.scope_type, row.workspace_id, row.reason_text,
                           row.expires_at, row.id)


def paused_workspaces(control_key: str | None) -> set[int]:
    """Workspaces with an active workspace-scoped pause: their tenants are skipped by an
    all-tenants run instead of blocking it."""
    if not control_key:
        return set()
    return set(db.session.scalars(
        select(Activation.workspace_id).where(
            Activation.control_key == control_key, Activation.scope_type == "workspace",
            or_(Activation.expires_at.is_(None), Activation.expires_at > utcnow()))
    ))
