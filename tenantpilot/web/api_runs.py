"""/system/api/v1/runs: the runs list with the page's filters, a run, its tenant results,
cancel and retry of failed tenants — the functions of the run pages (``runs_ui``),
answered as JSON with keyset cursors."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from ..extensions import db
from ..models import OperationRun
from ..planes import platform_required
from ..timeutil import iso_utc
from . import runs_ui
from .api_runbooks import StartSchema, outcome_response
from .api_schemas import (Cursor, Limit, QueryId, RunSummarySchema, Text, decode_cursor,
                          encode_cursor, run_summary)
from .apiv1 import Blueprint, problem
from .system import current_actor

bp = Blueprint("api_runs", __name__, url_prefix="/runs", tag="Runs",
               description="Operation runs: list and filter, one run, its tenants, cancel, retry failed tenants.")

FAILURES_SHOWN = 50  # a run's failure summary is bounded; the tenants endpoint has every row
TENANT_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "cancelled")


class RunListArgs(ma.Schema):
    type = Text(max_length=100, load_default="", metadata={"description": "Operation type key."})
    status = ma.fields.String(load_default="", validate=validate.OneOf(("", *runs_ui.RUN_STATUSES)))
    outcome = ma.fields.String(load_default="", validate=validate.OneOf(("", *runs_ui.OUTCOMES)))
    tenant = QueryId(load_default=None, metadata={"description": "Runs that touched this tenant (id)."})
    tenant_name = Text(max_length=200, load_default="",
                       metadata={"description": "A tenant name or tenant ID as typed; no match lists nothing."})
    workspace_name = Text(max_length=200, load_default="",
                          metadata={"description": "A workspace name as typed; no match lists nothing."})
    window = ma.fields.String(load_default="", validate=validate.OneOf(("", *runs_ui.WINDOWS)))
    cursor = Cursor()
    limit = Limit()


class RunListSchema(ma.Schema):
    runs = ma.fields.List(ma.fields.Nested(RunSummarySchema), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True,
                                   metadata={"description": "Pass as `cursor` for the next page; null on the last."})


class RunDetailSchema(RunSummarySchema):
    progress_percent = ma.fields.Integer(required=True)
    summary_counts = ma.fields.Dict(keys=ma.fields.String(), required=True)
    failure_summary = ma.fields.List(ma.fields.Dict(), required=True,
                                     metadata={"description": f"At most {FAILURES_SHOWN} entries."})
    cancel_requested = ma.fields.Boolean(required=True)
    initiator = ma.fields.Dict(allow_none=True, required=True,
                               metadata={"description": "Who started it: type, id, name, break_glass, api_token."})
    reason_code = ma.fields.String(allow_none=True, required=True)
    reason_text = ma.fields.String(allow_none=True, required=True)
    preflight_audit_id = ma.fields.Integer(allow_none=True, required=True)
    parent_run_id = ma.fields.Integer(allow_none=True, required=True)


class TenantListArgs(ma.Schema):
    status = ma.fields.String(load_default="", validate=validate.OneOf(("", *TENANT_STATUSES)))
    cursor = Cursor()
    limit = Limit(default=100)


class TenantResultSchema(ma.Schema):
    tenant_id = ma.fields.Integer(required=True)
    tenant_name = ma.fields.String(required=True)
    external_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": " | ".join(TENANT_STATUSES)})
    reason_code = ma.fields.String(allow_none=True, required=True)
    message = ma.fields.String(allow_none=True, required=True)
    error = ma.fields.String(allow_none=True, required=True,
                             metadata={"description": "A failed tenant's message (or reason code); null otherwise."})
    counts = ma.fields.Dict(keys=ma.fields.String(), required=True)
    started_at = ma.fields.String(allow_none=True, required=True)
    finished_at = ma.fields.String(allow_none=True, required=True)


class TenantListSchema(ma.Schema):
    tenants = ma.fields.List(ma.fields.Nested(TenantResultSchema), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


def _run(run_id: int) -> OperationRun:
    run = db.session.get(OperationRun, run_id)
    if run is None:
        problem(404, detail=f"No run #{run_id}.")
    return run


def _int_or_none(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_detail(run: OperationRun) -> dict:
    context = run.context or {}
    return {
        **run_summary(run), "progress_percent": run.progress_percent,
        "summary_counts": dict(run.summary_counts or {}),
        "failure_summary": [f for f in (run.failure_summary or []) if isinstance(f, dict)][:FAILURES_SHOWN],
        "cancel_requested": bool(run.cancel_requested),
        "initiator": context.get("initiator") if isinstance(context.get("initiator"), dict) else None,
        "reason_code": context.get("reason_code"), "reason_text": context.get("reason_text"),
        "preflight_audit_id": _int_or_none(context.get("preflight_audit_id")),
        "parent_run_id": run.parent_run_id,
    }


@bp.route("", methods=["GET"])
@platform_required("platform.ops.view")
@bp.arguments(RunListArgs, location="query")
@bp.response(200, RunListSchema)
def list_runs(args):
    """Runs, newest first, with the runs page's filters."""
    found = runs_ui.search_runs(
        type=args["type"], status=args["status"], outcome=args["outcome"], tenant=args["tenant"],
        tenant_name=args["tenant_name"], workspace_name=args["workspace_name"], window=args["window"],
        before=decode_cursor(args["cursor"]), limit=args["limit"])
    return {"runs": [run_summary(r) for r in found.rows],
            "next_cursor": encode_cursor(found.rows[-1].id) if found.more else None}


@bp.route("/<int:run_id>", methods=["GET"])
@platform_required("platform.ops.view")
@bp.response(200, RunDetailSchema)
def get_run(run_id: int):
    """One run: progress, counts, failures, initiator and reason."""
    return run_detail(_run(run_id))


@bp.route("/<int:run_id>/tenants", methods=["GET"])
@platform_required("platform.ops.view")
@bp.arguments(TenantListArgs, location="query")
@bp.response(200, TenantListSchema)
def list_run_tenants(args, run_id: int):
    """A run's tenant results by tenant id (the rows of the run's CSV export)."""
    run = _run(run_id)
    rows = runs_ui.tenant_results(run.id, args["status"], decode_cursor(args["cursor"]) or 0, args["limit"])
    more = len(rows) > args["limit"]
    rows = rows[:args["limit"]]
    return {"tenants": [{
        "tenant_id": rt.tenant_id, "tenant_name": name, "external_id": external_id or "", "status": rt.status,
        "reason_code": rt.reason_code, "message": rt.message,
        "error": (rt.message or rt.reason_code) if rt.status == "failed" else None,
        "counts": dict(rt.counts or {}),
        "started_at": iso_utc(rt.started_at) or None, "finished_at": iso_utc(rt.finished_at) or None,
    } for rt, name, external_id in rows], "next_cursor": encode_cursor(rows[-1][0].tenant_id) if more else None}


@bp.route("/<int:run_id>/cancel", methods=["POST"])
@platform_required("platform.ops.view")
@bp.response(200, RunDetailSchema)
def cancel(run_id: int):
    """Cancel a run: pending tenants will not run, running ones finish (the POST is the
    confirmation). A completed run → 409 ``run-finished``."""
    run = _run(run_id)
    runs_ui.check_can_act(run)
    if not runs_ui.cancel_run(run, current_actor()):
        problem(409, "run-finished", "The run has already completed",
                "This run has already completed; nothing to cancel.", run_id=run.id)
    db.session.refresh(run)
    return run_detail(run)


@bp.route("/<int:run_id>/retry-failed", methods=["POST"])
@platform_required("platform.ops.view")
@bp.response(201, StartSchema, description="A run for the failed tenants started.")
@bp.alt_response(200, schema=StartSchema, description="Not started again: deduped or scope busy (the active run).")
def retry_failed(run_id: int):
    """Run the runbook again for the failed tenants of a completed run (a child run,
    through the start seam). Nothing failed → 409 ``nothing-to-retry``; paused → 409 ``paused``."""
    run = _run(run_id)
    runs_ui.check_can_act(run)
    outcome = runs_ui.retry_failed(run, current_actor(), "api")
    if isinstance(outcome, runs_ui.RetryRefused):
        problem(409, outcome.slug, "Nothing to retry" if outcome.slug == "nothing-to-retry" else "Not a runbook run",
                outcome.message, run_id=run.id)
    return outcome_response(outcome)
