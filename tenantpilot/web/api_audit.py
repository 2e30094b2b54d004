"""/system/api/v1/audit and /system/api/v1/telemetry: the audit log with the audit page's
filters (``audit_ui.parse_filters``/``search``), and the product telemetry window summary
the dashboard shows. Read-only, like their pages: nothing here writes an audit row."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import validate

from .. import dashboard, telemetry
from ..planes import platform_required
from ..timeutil import iso_utc, utcnow
from . import audit_ui
from .api_schemas import Cursor, Limit, Text, decode_cursor, encode_cursor
from .apiv1 import Blueprint, problem

bp = Blueprint("api_audit", __name__, url_prefix="", tag="Audit and telemetry",
               description="The audit log (filters as on /system/audit) and the product telemetry summary.")


class AuditArgs(ma.Schema):
    action = Text(max_length=300, load_default="",
                  metadata={"description": "An action and everything under it (operational_control matches "
                                           "operational_control.paused)."})
    actor = Text(max_length=300, load_default="", metadata={"description": "Part of the actor's name or e-mail."})
    actor_type = Text(max_length=20, load_default="", metadata={"description": " | ".join(audit_ui.ACTOR_TYPES)})
    workspace = Text(max_length=20, load_default="", metadata={"description": "Workspace id."})
    tenant = Text(max_length=20, load_default="", metadata={"description": "Tenant id."})
    workspace_name = Text(max_length=300, load_default="")
    tenant_name = Text(max_length=300, load_default="")
    window = Text(max_length=20, load_default="", metadata={"description": " | ".join(audit_ui.WINDOWS)})
    status = Text(max_length=20, load_default="", metadata={"description": "success | blocked | failed"})
    target_type = Text(max_length=100, load_default="")
    target_id = Text(max_length=200, load_default="", metadata={"description": "Needs target_type."})
    cursor = Cursor()
    limit = Limit()


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    recorded_at = ma.fields.String(required=True)
    action = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    actor_type = ma.fields.String(required=True)
    actor_id = ma.fields.Integer(allow_none=True, required=True)
    actor_name = ma.fields.String(allow_none=True, required=True)
    workspace_id = ma.fields.Integer(allow_none=True, required=True)
    tenant_id = ma.fields.Integer(allow_none=True, required=True)
    target_type = ma.fields.String(allow_none=True, required=True)
    target_id = ma.fields.String(allow_none=True, required=True)
    target_label = ma.fields.String(allow_none=True, required=True)
    summary = ma.fields.String(allow_none=True, required=True)
    metadata = ma.fields.Dict(keys=ma.fields.String(), required=True)


class AuditListSchema(ma.Schema):
    events = ma.fields.List(ma.fields.Nested(AuditEventSchema), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


class TelemetryArgs(ma.Schema):
    window = ma.fields.String(load_default=dashboard.DEFAULT_WINDOW, validate=validate.OneOf(tuple(dashboard.WINDOWS)))


class FamilySchema(ma.Schema):
    name = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    feature_area = ma.fields.String(required=True)
    count = ma.fields.Integer(required=True, metadata={"description": "Events in the window."})
    trend = ma.fields.List(ma.fields.Integer(), required=True,
                           metadata={"description": "Events per bucket, oldest first (the dashboard's sparkline)."})


class RunKpiSchema(ma.Schema):
    started = ma.fields.Integer(required=True)
    succeeded = ma.fields.Integer(required=True)
    failed = ma.fields.Integer(required=True, metadata={"description": "Failed or partially succeeded."})
    partially_succeeded = ma.fields.Integer(required=True)
    active = ma.fields.Integer(required=True, metadata={"description": "Queued or running now (not windowed)."})
    running = ma.fields.Integer(required=True)
    queued = ma.fields.Integer(required=True)


class TelemetrySummarySchema(ma.Schema):
    window = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    since = ma.fields.String(required=True)
    until = ma.fields.String(required=True)
    total = ma.fields.Integer(required=True)
    active_workspaces = ma.fields.Integer(required=True,
                                          metadata={"description": "Workspaces with an event in the window."})
    trend_bucket_seconds = ma.fields.Integer(required=True)
    families = ma.fields.List(ma.fields.Nested(FamilySchema), required=True)
    runs = ma.fields.Nested(RunKpiSchema, required=True, metadata={"description": "The dashboard's run KPIs."})


def event_view(e) -> dict:
    """An audit event for API clients: never the actor's e-mail, IP or user agent."""
    return {"id": e.id, "recorded_at": iso_utc(e.recorded_at), "action": e.action, "status": e.status,
            "actor_type": e.actor_type, "actor_id": e.actor_id, "actor_name": e.actor_name,
            "workspace_id": e.workspace_id, "tenant_id": e.tenant_id, "target_type": e.target_type,
            "target_id": e.target_id, "target_label": e.target_label, "summary": e.summary,
            "metadata": e.meta if isinstance(e.meta, dict) else {}}


@bp.route("/audit", methods=["GET"])
@platform_required(*audit_ui.CAPS)
@bp.arguments(AuditArgs, location="query")
@bp.response(200, AuditListSchema)
def list_audit(args):
    """Audit events, newest first, with the audit page's filters. A bad filter → 400
    naming it (nothing listed: a silently ignored filter would show too much)."""
    f, errors = audit_ui.parse_filters({k: args[k] for k in audit_ui.FILTER_KEYS})
    if errors:
        problem(400, "bad-filter", "Invalid filter", " ".join(errors), errors={"filters": errors})
    rows, more, error = audit_ui.search(f, decode_cursor(args["cursor"]), args["limit"])
    if error:
        problem(400, "bad-cursor", "Invalid cursor", error)
    return {"events": [event_view(e) for e in rows], "next_cursor": encode_cursor(rows[-1].id) if more else None}


@bp.route("/telemetry/summary", methods=["GET"])
@platform_required("platform.console.view")
@bp.arguments(TelemetryArgs, location="query")
@bp.response(200, TelemetrySummarySchema)
def telemetry_summary(args):
    """Product telemetry of a window (counts per event family, active workspaces, trend)
    and the run KPIs, as on the dashboard. Aggregates only."""
    now = utcnow()
    window = dashboard.WINDOWS[args["window"]]
    found = telemetry.summary(window.key, now)
    trend = telemetry.series(window.key, now)
    step, _ = telemetry.SPARK_BUCKETS[window.key]
    families = current_app.extensions["tenantpilot"].registry.event_families
    return {
        "window": window.key, "label": window.label, "since": iso_utc(found.since), "until": iso_utc(now),
        "total": found.total, "active_workspaces": found.active_workspaces,
        "trend_bucket_seconds": int(step.total_seconds()),
        "families": [{"name": name, "label": fam.label, "feature_area": fam.feature_area,
                      "count": found.counts.get(name, 0), "trend": trend.get(name, [])}
                     for name, fam in families.items()],
        "runs": dashboard.run_kpis(now - window.delta),
    }

