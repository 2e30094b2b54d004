"""The one write path for operational controls (SPEC 4): pause, update, resume, expire,
and the impact preview shown before a change.

Reads of the current state go through controls.evaluate(); this module only writes.
Audit ownership: global changes are platform-plane events (workspace_id and tenant_id
null); workspace-scoped changes belong to that workspace. Every audit row commits together
with the change it describes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import delete, distinct, func, or_, select
from sqlalchemy.exc import IntegrityError

from . import audit, words
from .actors import Actor
from .extensions import db
from .models import AuditLog, OperationalControlActivation as Activation, OperationRun, Tenant, Workspace
from .timeutil import utcnow

REASON_MIN, REASON_MAX = 5, 500
HISTORY_ACTIONS = ("operational_control.paused", "operational_control.updated", "operational_control.resumed",
                   "operational_control.expired", "operational_control.execution_blocked")


class ControlValidationError(ValueError):
    """Bad input for a control change; ``errors`` maps field name → message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class PauseRequest:
    control: object  # api.ControlKey
    scope_type: str
    workspace: Workspace | None
    reason: str
    expires_at: datetime | None

    @property
    def workspace_id(self) -> int | None:
        return self.workspace.id if self.workspace else None


@dataclass(frozen=True)
class Impact:
    label: str
    scope_type: str
    workspace_name: str | None
    workspaces: int
    tenants: int
    active_runs: int

    @property
    def sentence(self) -> str:
        tenants = words.tenants(self.tenants)
        if self.scope_type == "workspace":
            return f"{self.label} will affect workspace {self.workspace_name} ({tenants})"
        workspaces = ngettext("%(count)s workspace", "%(count)s workspaces", self.workspaces,
                              count=f"{self.workspaces:,}")
        return f"{self.label} will affect {workspaces} across {tenants}"

    @property
    def runs_sentence(self) -> str:
        return ngettext("%(count)s queued or running run of gated types continues unaffected",
                        "%(count)s queued or running runs of gated types continue unaffected",
                        self.active_runs, count=f"{self.active_runs:,}")


def control_keys():
    return current_app.extensions["tenantpilot"].registry.control_keys


# --- validation --------------------------------------------------------------------------


def _check_scope(errors: dict, control_key: str, scope_type: str, workspace_id) -> tuple:
    control = control_keys().get(control_key or "")
    if control is None:
        errors["control_key"] = f"Unknown control key {control_key!r}."
    if scope_type not in ("global", "workspace"):
        errors["scope_type"] = "Choose a scope: Global or One workspace."
    elif control is not None and scope_type not in control.scopes:
        errors["scope_type"] = f"{control.label} cannot be paused with scope {scope_type}."
    workspace = None
    if scope_type == "workspace":
        try:
            ws_id = int(workspace_id) if workspace_id not in (None, "") else None
        except (TypeError, ValueError):
            ws_id = None
        workspace = db.session.get(Workspace, ws_id) if ws_id else None
        if workspace is None:
            errors["workspace_id"] = "Choose an existing workspace." if workspace_id in (None, "", 0, "0") \
                else "Unknown workspace."
    return control, workspace


def validate_pause(control_key, scope_type, workspace_id, reason, expires_at, now=None) -> PauseRequest:
    errors: dict[str, str] = {}
    control, workspace = _check_scope(errors, control_key, scope_type, workspace_id)
    reason = (reason or "").strip()
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        errors["reason"] = f"The reason must be {REASON_MIN} to {REASON_MAX} characters (it has {len(reason)})."
    if expires_at is not None and expires_at <= (now or utcnow()):
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ControlValidationError(errors)
    return PauseRequest(control, scope_type, workspace if scope_type == "workspace" else None, reason, expires_at)


def validate_scope(control_key, scope_type, workspace_id):
    errors: dict[str, str] = {}
    control, workspace = _check_scope(errors, control_key, scope_type, workspace_id)
    if errors:
        raise ControlValidationError(errors)
    return control, (workspace if scope_type == "workspace" else None)


# --- writes ------------------------------------------------------------------------------


def _scope_filter(control_key: str, scope_type: str, workspace_id: int | None):
    where = [Activation.control_key == control_key, Activation.scope_type == scope_type]
    if scope_type == "workspace":
        where.append(Activation.workspace_id == workspace_id)
    return where


def _metadata(req_key, scope_type, workspace_id, reason, expires_at, actor: Actor, **extra) -> dict:
    return {"control_key": req_key, "scope_type": scope_type, "workspace_id": workspace_id, "reason": reason,
            "expires_at": expires_at.isoformat() if expires_at else None, "actor_id": actor.id, **extra}


def _scope_text(scope_type: str, workspace: Workspace | None) -> str:
    return f"workspace {workspace.name}" if scope_type == "workspace" and workspace else "globally"


def pause(control_key: str, scope_type: str, workspace_id: int | None, reason: str,
          expires_at: datetime | None, actor: Actor) -> str:
    """Pause a scope, or update it if it is already paused. Returns "paused" | "updated"."""
    req = validate_pause(control_key, scope_type, workspace_id, reason, expires_at)
    user_id = actor.id if actor.kind == "platform" else None
    for attempt in range(3):
        try:
            db.session.execute(delete(Activation).where(
                *_scope_filter(control_key, scope_type, req.workspace_id),
                Activation.expires_at.is_not(None), Activation.expires_at <= utcnow()))
            row = db.session.execute(
                select(Activation).where(*_scope_filter(control_key, scope_type, req.workspace_id))
                .with_for_update()
            ).scalar_one_or_none()
            now = utcnow()
            if row is None:
                row = Activation(control_key=control_key, scope_type=scope_type, workspace_id=req.workspace_id,
                                 reason_text=req.reason, expires_at=req.expires_at, created_by=user_id,
                                 updated_by=user_id, created_at=now, updated_at=now)
                db.session.add(row)
                db.session.flush()  # the partial unique index decides a race here
                outcome = "paused"
                extra = {}
            else:
                extra = {"previous_reason": row.reason_text,
                         "previous_expires_at": row.expires_at.isoformat() if row.expires_at else None}
                row.reason_text, row.expires_at = req.reason, req.expires_at
                row.updated_by, row.updated_at = user_id, now
                outcome = "updated"
            audit.record(
                f"operational_control.{outcome}", actor=actor, workspace_id=req.workspace_id, tenant_id=None,
                target=("operational_control", control_key, req.control.label),
                summary=f"{req.control.label} {outcome} {_scope_text(scope_type, req.workspace)}",
                metadata=_metadata(control_key, scope_type, req.workspace_id, req.reason, req.expires_at, actor,
                                   activation_id=row.id, **extra),
                commit=False,
            )
            db.session.commit()
            return outcome
        except IntegrityError:
            # Another operator created the row between our read and our insert: retry,
            # which now finds the row and updates it.
            db.session.rollback()
    raise RuntimeError("could not pause: the scope kept changing")  # pragma: no cover


def resume(control_key: str, scope_type: str, workspace_id: int | None, actor: Actor) -> str:
    """Resume a paused scope. Returns "resumed" | "already_enabled" (nothing changed)."""
    control, workspace = validate_scope(control_key, scope_type, workspace_id)
    ws_id = workspace.id if workspace else None
    row = db.session.execute(
        select(Activation).where(*_scope_filter(control_key, scope_type, ws_id),
                                 or_(Activation.expires_at.is_(None), Activation.expires_at > utcnow()))
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        db.session.rollback()
        return "already_enabled"
    meta = _metadata(control_key, scope_type, ws_id, row.reason_text, row.expires_at, actor, activation_id=row.id)
    db.session.delete(row)
    audit.record("operational_control.resumed", actor=actor, workspace_id=ws_id, tenant_id=None,
                 target=("operational_control", control_key, control.label),
                 summary=f"{control.label} resumed {_scope_text(scope_type, workspace)}", metadata=meta, commit=False)
    db.session.commit()
    return "resumed"


def expire_due(now: datetime | None = None) -> int:
    """Delete pauses whose expiry has passed, one `operational_control.expired` event each.
    (The evaluator already ignores them; this only tidies up and records it.)"""
    now = now or utcnow()
    actor = Actor.system("Control expiry")
    done = 0
    rows = db.session.scalars(select(Activation).where(Activation.expires_at.is_not(None),
                                                       Activation.expires_at <= now)).all()
    for row in rows:
        meta = _metadata(row.control_key, row.scope_type, row.workspace_id, row.reason_text, row.expires_at, actor,
                         activation_id=row.id)
        control = control_keys().get(row.control_key)
        label = control.label if control else row.control_key
        # Deleting by id: if another scheduler got there first, rowcount is 0 and we skip.
        if db.session.execute(delete(Activation).where(Activation.id == row.id)).rowcount != 1:
            db.session.rollback()
            continue
        audit.record("operational_control.expired", actor=actor, workspace_id=row.workspace_id, tenant_id=None,
                     target=("operational_control", row.control_key, label),
                     summary=f"{label} pause expired ({row.scope_type})", metadata=meta, commit=False)
        db.session.commit()
        done += 1
    db.session.commit()
    return done


def run_expiry_job() -> int:
    return expire_due()


# --- reads for the management surfaces ---------------------------------------------------


def gated_operation_types(control_key: str) -> set[str]:
    registry = current_app.extensions["tenantpilot"].registry
    types = {op.key for op in registry.operation_types.values() if op.control_key == control_key}
    control = registry.control_keys.get(control_key)
    if control is not None:
        types |= set(control.operation_types)
    return types


def impact(control_key: str, scope_type: str, workspace_id: int | None) -> Impact:
    """What a pause (or resume) of this scope touches, from current data."""
    control = control_keys()[control_key]
    tenants = select(Tenant).where(Tenant.status == "active", Tenant.is_platform.is_(False)).subquery()
    workspace = db.session.get(Workspace, workspace_id) if scope_type == "workspace" else None
    q = select(func.count(), func.count(distinct(tenants.c.workspace_id))).select_from(tenants)
    if workspace is not None:
        q = q.where(tenants.c.workspace_id == workspace.id)
    n_tenants, n_workspaces = db.session.execute(q).one()
    if workspace is not None:
        n_workspaces = 1
    runs_q = select(func.count()).select_from(OperationRun).where(
        OperationRun.type.in_(sorted(gated_operation_types(control_key)) or [""]),
        OperationRun.status.in_(("queued", "running")))
    if workspace is not None:
        # Runs in that workspace, plus all-tenants runs (they include its tenants).
        runs_q = runs_q.where(or_(OperationRun.workspace_id == workspace.id, OperationRun.workspace_id.is_(None)))
    return Impact(control.label, scope_type, workspace.name if workspace else None, n_workspaces, n_tenants,
                  db.session.scalar(runs_q))


def active_pauses(control_key: str | None = None) -> list[Activation]:
    """Active (unexpired) pauses, global first."""
    q = select(Activation).where(or_(Activation.expires_at.is_(None), Activation.expires_at > utcnow()))
    if control_key:
        q = q.where(Activation.control_key == control_key)
    rows = db.session.scalars(q.order_by(Activation.control_key, Activation.scope_type, Activation.id)).all()
    return sorted(rows, key=lambda r: (r.control_key, r.scope_type != "global", r.id))


def state_label(pauses: list) -> str:
    if any(p.scope_type == "global" for p in pauses):
        return "Paused globally"
    if pauses:
        return f"Workspace pauses active ({len(pauses)})"
    return "Enabled"


def history(control_key: str, limit: int = 10) -> list[AuditLog]:
    return db.session.scalars(
        select(AuditLog).where(
            AuditLog.action.in_(HISTORY_ACTIONS),
            or_(AuditLog.target_id == control_key, AuditLog.meta["control_key"].as_string() == control_key))
        .order_by(AuditLog.id.desc()).limit(limit)
    ).all()
