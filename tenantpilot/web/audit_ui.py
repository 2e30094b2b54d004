"""The audit log on the platform plane (SPEC 8): /system/audit.

Read-only by construction: these views only SELECT from audit_logs (the ORM events and the
database trigger refuse updates and deletes anyway) and write no audit of their own — a
passive render is not an auditable action.

Listing: newest first by (recorded_at, id), 50 a page, keyset pagination with
``?before=<id>`` (the cursor is the last row's id; its recorded_at is looked up so the
seek stays on the (recorded_at, id) index). Filters: action (the action and everything
under it: ``operational_control`` or ``operational_control.`` match
``operational_control.paused``; a prefix seek on the (action, recorded_at) index), actor
(name or e-mail substring), actor_type, workspace and tenant by name (``workspace_name``,
``tenant_name``, resolved as in ``lookup``) or by id (links), window, status, and
target_type + target_id so other pages can link "audit events for run #12".

A bad filter value answers 400 with the filter form and a message naming the field; no rows
are listed (a silently ignored filter would show more than the operator asked for).
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

from flask import Blueprint, abort, render_template, request, url_for
from sqlalchemy import func, or_, select, tuple_

from ..audit import STATUSES
from ..extensions import db
from ..models import AuditLog, Tenant, Workspace
from ..planes import platform_required
from ..timeutil import utcnow
from . import lookup
from .inputs import parse_int

bp = Blueprint("audit_ui", __name__)

CAPS = ("platform.audit.view",)
PAGE_SIZE = 50
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
ACTOR_TYPES = ("human", "platform", "system")
ACTION_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,120}$")
TARGET_TYPE_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,60}$")
FILTER_KEYS = ("action", "actor", "actor_type", "workspace", "tenant", "workspace_name", "tenant_name", "window",
               "status", "target_type", "target_id")
ACTION_CHOICES_LIMIT = 300


def _positive_int(raw: str, label: str, errors: list[str]) -> int | None:
    value = parse_int(raw, minimum=1)
    if value is not None:
        return value
    errors.append(f"{label} must be a positive whole number (got “{raw[:40]}”).")
    return None


def parse_filters(args) -> tuple[dict, list[str]]:
    """The filters of a request, validated: (filters, errors). Empty values mean 'any'."""
    raw = {k: (args.get(k) or "").strip() for k in (*FILTER_KEYS, "before")}
    errors: list[str] = []
    f: dict = {"action": "", "actor": "", "actor_type": "", "workspace": None, "tenant": None, "window": "",
               "status": "", "target_type": "", "target_id": "", "before": None, "workspace_name": "",
               "tenant_name": "", "workspace_ids": None, "tenant_ids": None, "matches": {}}
    if raw["action"]:
        if ACTION_RE.match(raw["action"]) and raw["action"].strip("."):
            f["action"] = raw["action"]
        else:
            errors.append("Action must be an action id such as platform.ops.runbooks.start "
                          "(letters, digits, “.”, “_”, “-”, “:”; at most 120 characters).")
    if raw["actor"]:
        if len(raw["actor"]) <= 200:
            f["actor"] = raw["actor"]
        else:
            errors.append("Actor must be at most 200 characters.")
    if raw["actor_type"]:
        if raw["actor_type"] in ACTOR_TYPES:
            f["actor_type"] = raw["actor_type"]
        else:
            errors.append(f"Actor type must be one of: {', '.join(ACTOR_TYPES)}.")
    if raw["workspace"]:
        f["workspace"] = _positive_int(raw["workspace"], "Workspace", errors)
    if raw["tenant"]:
        f["tenant"] = _positive_int(raw["tenant"], "Tenant", errors)
    for key, resolve in (("workspace_name", lookup.resolve_workspaces), ("tenant_name", lookup.resolve_tenants)):
        match = f["matches"][key] = resolve(raw[key])
        f[key] = match.text
        if match.error:
            errors.append(match.error)
        elif match.active:
            f[key.replace("_name", "_ids")] = match.ids
    if raw["window"]:
        if raw["window"] in WINDOWS:
            f["window"] = raw["window"]
        else:
            errors.append(f"Window must be one of: {', '.join(WINDOWS)}.")
    if raw["status"]:
        if raw["status"] in STATUSES:
            f["status"] = raw["status"]
        else:
            errors.append(f"Status must be one of: {', '.join(STATUSES)}.")
    if raw["target_type"]:
        if TARGET_TYPE_RE.match(raw["target_type"]):
            f["target_type"] = raw["target_type"]
        else:
            errors.append("Target type must be a type id such as operation_run (at most 60 characters).")
    if raw["target_id"]:
        if not raw["target_type"]:
            errors.append("Target id needs a target type (e.g. target_type=operation_run&target_id=12).")
        elif len(raw["target_id"]) > 100:
            errors.append("Target id must be at most 100 characters.")
        else:
            f["target_id"] = raw["target_id"]
    if raw["before"]:
        f["before"] = _positive_int(raw["before"], "Page cursor (before)", errors)
    return f, errors


def build_query(f: dict):
    q = select(AuditLog)
    if f["action"]:
        action = f["action"].rstrip(".")
        children = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
        q = q.where(or_(AuditLog.action == action, AuditLog.action.like(children, escape="\\")))
    if f["actor"]:
        like = lookup.like_pattern(f["actor"])
        q = q.where(or_(func.lower(AuditLog.actor_name).like(like, escape="\\"),
                        func.lower(AuditLog.actor_email).like(like, escape="\\")))
    if f["actor_type"]:
        q = q.where(AuditLog.actor_type == f["actor_type"])
    if f["workspace"]:
        q = q.where(AuditLog.workspace_id == f["workspace"])
    if f["tenant"]:
        q = q.where(AuditLog.tenant_id == f["tenant"])
    if f["workspace_ids"]:
        q = q.where(AuditLog.workspace_id.in_(f["workspace_ids"]))
    if f["tenant_ids"]:
        q = q.where(AuditLog.tenant_id.in_(f["tenant_ids"]))
    if f["window"] and WINDOWS[f["window"]] is not None:
        q = q.where(AuditLog.recorded_at >= utcnow() - WINDOWS[f["window"]])
    if f["status"]:
        q = q.where(AuditLog.status == f["status"])
    if f["target_type"]:
        q = q.where(AuditLog.target_type == f["target_type"])
    if f["target_id"]:
        q = q.where(AuditLog.target_id == f["target_id"])
    return q


BAD_CURSOR = "This page cursor points at no audit event; start again from the newest events."


def search(f: dict, before: int | None, limit: int) -> tuple[list, bool, str | None]:
    """One page of events matching valid filters, newest first, after the event
    ``before`` → (rows, more follow, error). The page and the API (``api_audit``)."""
    q = build_query(f)
    if before:
        anchor = db.session.get(AuditLog, before)
        if anchor is None:
            return [], False, BAD_CURSOR
        q = q.where(tuple_(AuditLog.recorded_at, AuditLog.id) < tuple_(anchor.recorded_at, anchor.id))
    rows = db.session.scalars(q.order_by(AuditLog.recorded_at.desc(), AuditLog.id.desc()).limit(limit + 1)).all()
    return list(rows[:limit]), len(rows) > limit, None


def _names(model, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def action_choices() -> list[str]:
    """Distinct actions for the filter's suggestions (an index-only scan of the action index)."""
    return list(db.session.scalars(
        select(AuditLog.action).distinct().order_by(AuditLog.action).limit(ACTION_CHOICES_LIMIT)))


def list_url(**filters) -> str:
    return url_for("audit_ui.audit_list", **{k: v for k, v in filters.items() if v not in (None, "")})


@bp.get("/")
@bp.get("")  # registered first, so url_for builds /system/audit
@platform_required(*CAPS)
def audit_list():
    f, errors = parse_filters(request.args)
    rows, next_url = [], None
    if not errors:
        rows, more, error = search(f, f["before"], PAGE_SIZE)
        if error:
            errors.append(error)
        elif more:
            next_url = list_url(**{k: f[k] for k in FILTER_KEYS}, before=rows[-1].id)
    workspaces = _names(Workspace, [r.workspace_id for r in rows] + [f["workspace"]])
    tenants = _names(Tenant, [r.tenant_id for r in rows] + [f["tenant"]])
    # Name filters show their own errors next to the field; links by id show the name.
    for key, by_id, names in (("workspace_name", "workspace", workspaces), ("tenant_name", "tenant", tenants)):
        if not f["matches"][key].active and f[by_id]:
            f["matches"][key].text = names.get(f[by_id], "")
    field_errors = {m.error for m in f["matches"].values() if m.error}
    active = {k: f[k] for k in FILTER_KEYS if f[k]}
    return render_template(
        "system/audit.html", rows=rows, filters=f, errors=errors, workspaces=workspaces, tenants=tenants,
        field_errors=field_errors,
        actions=action_choices(), statuses=STATUSES, actor_types=ACTOR_TYPES, windows=WINDOWS, active=active,
        next_url=next_url, first_url=list_url(**active) if f["before"] else None, list_url=list_url,
    ), (400 if errors else 200)


@bp.get("/<int:event_id>")
@platform_required(*CAPS)
def audit_detail(event_id: int):
    event = db.session.get(AuditLog, event_id)
    if event is None:
        abort(404)
    workspace = db.session.get(Workspace, event.workspace_id) if event.workspace_id else None
    tenant = db.session.get(Tenant, event.tenant_id) if event.tenant_id else None
    target_url = None
    run_id = parse_int(event.target_id) if event.target_type == "operation_run" else None
    if run_id:
        target_url = url_for("runs.run_detail", run_id=run_id)
    return render_template(
        "system/audit_detail.html", event=event, workspace=workspace, tenant=tenant, target_url=target_url,
        metadata_json=json.dumps(event.meta or {}, indent=2, sort_keys=True, ensure_ascii=False, default=str),
        list_url=list_url,
    )
