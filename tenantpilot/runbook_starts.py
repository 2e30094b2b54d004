"""Preflight → confirm → start of a platform runbook: the rules both the pages
(``web.runbooks_ui``) and the API (``web.api_runbooks``) apply, so a start is refused or
allowed for the same reasons, with the same words, whoever asks.

- The preflight is read-only (a savepoint rolled back) and is stored as its audit row;
  the start names that row.
- A start needs this actor's own preflight of this runbook, at most 15 minutes old; the
  runbook's confirmation word typed exactly; a reason code, and a reason text for the
  scopes that need one (and always during break-glass).
- Drift: when the affected count moved more than 10% since the preflight, nothing starts.
- Then the start seam decides (paused, scope busy, deduped, started).
"""
from __future__ import annotations

from datetime import timedelta

from flask_babel import ngettext

from . import audit, controls, seam
from .actors import Actor
from .api import REASON_CODES
from .extensions import db
from .models import AuditLog, Tenant, Workspace
from .runs import Scope, tenant_universe
from .timeutil import utcnow

PREFLIGHT_ACTION = "platform.ops.runbooks.preflight"
PREFLIGHT_MAX_AGE = timedelta(minutes=15)
DRIFT_TOLERANCE = 0.10
REASON_MIN = 5


def scope_label(scope: dict) -> str:
    if scope.get("kind") == "workspace":
        ws = db.session.get(Workspace, scope.get("workspace_id"))
        return f"workspace {ws.name}" if ws else "a workspace"
    if scope.get("kind") == "single_tenant":
        tenant = db.session.get(Tenant, scope.get("tenant_id"))
        return f"tenant {tenant.name}" if tenant else "a tenant"
    return "all tenants"


def scope_errors(runbook, kind: str | None, workspace_id: int | None, tenant_id: int | None) -> dict[str, str]:
    """Field errors of a requested scope (the page's form rules), or {}."""
    if kind not in runbook.scopes:
        return {"kind": "Choose a scope: " + ", ".join(runbook.scopes) + "."}
    if kind == "workspace" and (not workspace_id or db.session.get(Workspace, workspace_id) is None):
        return {"workspace_id": "Choose a workspace."}
    if kind == "single_tenant":
        tenant = db.session.get(Tenant, tenant_id) if tenant_id else None
        if tenant is None or tenant.status != "active" or tenant.is_platform:
            return {"tenant_id": "Choose an active tenant from the search results."}
    return {}


def normalized_scope(kind: str, workspace_id: int | None, tenant_id: int | None) -> dict:
    """The stored form of a valid scope (``scope_errors`` passed)."""
    if kind == "workspace":
        return {"kind": "workspace", "workspace_id": workspace_id, "tenant_id": None}
    if kind == "single_tenant":
        tenant = db.session.get(Tenant, tenant_id)
        return {"kind": "single_tenant", "workspace_id": tenant.workspace_id, "tenant_id": tenant.id}
    return {"kind": "all_tenants", "workspace_id": None, "tenant_id": None}


def run_preflight(runbook, scope: dict) -> dict:
    """Preflight is read-only by contract; the savepoint rollback makes sure of it."""
    nested = db.session.begin_nested()
    try:
        result = dict(runbook.preflight(dict(scope)))
    finally:
        nested.rollback()
    result.setdefault("affected_count", 0)
    result.setdefault("total_count", 0)
    result.setdefault("estimated_tenants", 0)
    return result


def record_preflight(runbook, scope: dict, actor: Actor) -> tuple[AuditLog | None, dict]:
    """Run and store a preflight → (its audit row, or None when the row was spooled, and
    the figures)."""
    result = run_preflight(runbook, scope)
    paused = controls.paused_workspaces(runbook.control_key)
    if scope["kind"] == "all_tenants" and paused:
        result["paused_tenants"] = sum(1 for _, ws in tenant_universe(Scope("all_tenants")) if ws in paused)
    event = audit.record(
        PREFLIGHT_ACTION, actor=actor, workspace_id=scope.get("workspace_id"), tenant_id=scope.get("tenant_id"),
        target=("runbook", runbook.key, runbook.label), summary=f"Preflight of {runbook.label}",
        metadata={"runbook": runbook.key, "scope": scope, "result": result},
    )
    return event, result


def load_preflight(runbook, preflight_id: int | None, actor: Actor) -> tuple[AuditLog | None, str | None]:
    """The preflight this start relies on: this operator's, this runbook's, fresh."""
    event = db.session.get(AuditLog, preflight_id) if preflight_id else None
    if (event is None or event.action != PREFLIGHT_ACTION or event.actor_type != "platform"
            or event.actor_id != actor.id or (event.meta or {}).get("runbook") != runbook.key):
        return None, "Run a preflight first: a run only starts from a preflight of the same scope."
    if utcnow() - event.recorded_at > PREFLIGHT_MAX_AGE:
        return None, "This preflight is older than 15 minutes. Run the preflight again to see current numbers."
    return event, None


def expires_at(event: AuditLog):
    return event.recorded_at + PREFLIGHT_MAX_AGE


def reason_required(runbook, scope: dict, actor: Actor) -> bool:
    return scope["kind"] in runbook.reason_required_scopes or actor.break_glass


def confirmation_errors(runbook, scope: dict, actor: Actor, confirmation: str, reason_code: str,
                        reason_text: str) -> dict[str, str]:
    """Field errors of a confirmation (typed word, reason), or {}."""
    errors: dict[str, str] = {}
    if (confirmation or "").strip() != runbook.confirmation_word:
        errors["confirmation"] = f"Type {runbook.confirmation_word} exactly to confirm."
    if reason_code not in REASON_CODES:
        errors["reason_code"] = "Choose a reason code: " + ", ".join(REASON_CODES) + "."
    if reason_required(runbook, scope, actor) and len((reason_text or "").strip()) < REASON_MIN:
        errors["reason_text"] = ("A reason (at least 5 characters) is required for this scope"
                                 + (" and during break-glass." if actor.break_glass else "."))
    return errors


def drift(runbook, scope: dict, before: dict) -> str | None:
    """Refuse when the world moved since the preflight (more than 10% either way)."""
    now = run_preflight(runbook, scope)["affected_count"]
    was = before.get("affected_count", 0)
    if abs(now - was) > DRIFT_TOLERANCE * max(was, 1):
        return ngettext("The preflight found %(was)s item to change; there are now %(now)s. "
                        "Run the preflight again before starting.",
                        "The preflight found %(was)s items to change; there are now %(now)s. "
                        "Run the preflight again before starting.", was, was=f"{was:,}", now=f"{now:,}")
    return None


def start(runbook, event: AuditLog, actor: Actor, reason_code: str, reason_text: str, source: str,
          extra_context: dict | None = None):
    """Start from a stored preflight through the start seam; audited when it started.
    ``extra_context`` joins the run context (an approved request names its approver).

    The start's audit row is written in the run's own transaction (the seam's ``attach``):
    the run and the row that says who started it and why commit together, in one commit.
    A run the queue then refuses keeps that row, and its failure is audited when the
    ledger completes it (``platform.ops.runbooks.failed``)."""
    scope, result = event.meta["scope"], event.meta["result"]

    def audit_start(run) -> None:
        audit.record("platform.ops.runbooks.start", actor=actor, workspace_id=scope.get("workspace_id"),
                     tenant_id=scope.get("tenant_id"), target=("operation_run", run.id, runbook.label),
                     summary=f"Started {runbook.label} for {scope_label(scope)}",
                     metadata={"runbook": runbook.key, "scope": scope, "reason_code": reason_code,
                               "reason_text": reason_text, "break_glass": actor.break_glass,
                               "preflight_audit_id": event.id, "source": source,
                               **({"approval_request_id": extra_context["approval"]["request_id"]}
                                  if extra_context and "approval" in extra_context else {})},
                     commit=False)

    return seam.start(
        runbook.key, scope=Scope(scope["kind"], scope.get("workspace_id"), scope.get("tenant_id")), actor=actor,
        source=source, attach=audit_start,
        context={"runbook": runbook.key, "preflight": result, "preflight_audit_id": event.id,
                 "reason_code": reason_code, "reason_text": reason_text, **(extra_context or {})},
    )
