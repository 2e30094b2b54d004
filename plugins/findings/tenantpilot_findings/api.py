"""/admin/api/v1/tenants/<tenant>/findings: the findings page as JSON (same filters, same
keyset query) and its header action "Backfill findings lifecycle" (same start seam call,
``source="api"``)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from tenantpilot.sdk import (ApiBlueprint, RunSummarySchema, api_refuse_unstarted, hookimpl, iso_utc, parse_int,
                             run_summary, tenant_required, utcnow)
from .models import ALL_STATUSES, SEVERITIES, TYPES
from .views import page_of, start_backfill, start_message

bp = ApiBlueprint("findings_api", __name__, url_prefix="/tenants/<int:tenant_id>/findings", tag="Findings",
                  description="Findings of one tenant, and the tenant's findings lifecycle backfill.")
MAX_LIMIT = 200


class QueryInt(ma.fields.Integer):
    """An integer from the query string: ASCII digits only (``int()`` would take "١٢"),
    within [minimum, maximum], else a 422 naming the parameter."""

    def __init__(self, *, minimum: int = 1, maximum: int | None = None, **kw):
        super().__init__(validate=validate.Range(min=minimum, max=maximum), **kw)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value, attr, data, **kw):
        kwargs = {"minimum": self.minimum} | ({"maximum": self.maximum} if self.maximum is not None else {})
        number = parse_int(value.strip(), **kwargs) if isinstance(value, str) else None
        if number is None:
            raise ma.ValidationError("Must be a whole number written with the digits 0–9, within range.")
        return number


def _choice(values) -> ma.fields.String:
    return ma.fields.String(validate=validate.OneOf(values), metadata={"description": " | ".join(values)})


class FindingsQuerySchema(ma.Schema):
    status = _choice(ALL_STATUSES)
    severity = _choice(SEVERITIES)
    type = _choice(TYPES)
    cursor = QueryInt(metadata={"description": "The `next_cursor` of the previous page (findings with lower ids)."})
    limit = QueryInt(maximum=MAX_LIMIT, load_default=50, metadata={"description": f"1–{MAX_LIMIT}, default 50."})


class FindingSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    type = ma.fields.String(required=True)
    severity = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "new | triaged | in_progress | resolved, "
                                                                      "or a legacy status the backfill normalizes"})
    title = ma.fields.String(required=True)
    fingerprint = ma.fields.String(allow_none=True)
    created_at = ma.fields.String(allow_none=True)
    first_seen_at = ma.fields.String(allow_none=True)
    last_seen_at = ma.fields.String(allow_none=True)
    due_at = ma.fields.String(allow_none=True, metadata={"description": "SLA due date (open findings)."})
    overdue = ma.fields.Boolean(required=True)
    resolved_at = ma.fields.String(allow_none=True)
    resolution = ma.fields.String(allow_none=True)
    consolidated_into_id = ma.fields.Integer(allow_none=True)


class FindingListSchema(ma.Schema):
    findings = ma.fields.List(ma.fields.Nested(FindingSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next "
                                                                             "(older) page; null on the last page."})


class BackfillSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "started | deduped | scope_busy"})
    message = ma.fields.String(required=True)
    run = ma.fields.Nested(RunSummarySchema, required=True)


def _when(value):
    return iso_utc(value) if value is not None else None


def finding_view(f, now) -> dict:
    return {"id": f.id, "type": f.type, "severity": f.severity, "status": f.status, "title": f.title,
            "fingerprint": f.fingerprint, "created_at": _when(f.created_at), "first_seen_at": _when(f.first_seen_at),
            "last_seen_at": _when(f.last_seen_at), "due_at": _when(f.due_at), "overdue": f.is_overdue(now),
            "resolved_at": _when(f.resolved_at), "resolution": f.resolution,
            "consolidated_into_id": f.consolidated_into_id}


@bp.route("", methods=["GET"])
@tenant_required("tenant.view")
@bp.arguments(FindingsQuerySchema, location="query")
@bp.response(200, FindingListSchema)
def list_findings(tenant_id: int, query: dict):
    """Findings of the tenant, newest first, filtered like the findings page (keyset pages)."""
    chosen = {k: query[k] for k in ("status", "severity", "type") if k in query}
    rows, older, _newer, _total = page_of(tenant_id, chosen, query.get("cursor"), None, query["limit"])
    now = utcnow()
    return {"findings": [finding_view(f, now) for f in rows],
            "next_cursor": str(rows[-1].id) if rows and older else None}


@bp.route("/backfill", methods=["POST"])
@tenant_required("tenant.view")
@bp.response(201, BackfillSchema, description="Started.")
@bp.alt_response(200, schema=BackfillSchema, description="Already queued: the active run (deduped).")
def backfill(tenant_id: int):
    """Start "Backfill findings lifecycle" for this tenant, as the page's header action.

    403 without tenant.manage; 409 `paused` when the control is paused (nothing started)."""
    result = start_backfill(tenant_id, "api")
    api_refuse_unstarted(result)
    return ({"status": result.status, "message": start_message(result), "run": run_summary(result.run, "admin")},
            201 if result.status == "started" else 200)


@hookimpl
def tenantpilot_register_api_blueprints(app, plane):
    return bp if plane == "admin" else None
