"""Tenant plane: the findings page (/admin/t/<tenant>/findings) and its header action
"Backfill findings lifecycle" (SPEC 5)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import exists, func, select

from tenantpilot.sdk import (Actor, OperationRun, Scope, db, evaluate_control, parse_int, start_operation,
                             tenant_required, utcnow)
from .backfill import KEY
from .models import ALL_STATUSES, LEGACY_STATUSES, SEVERITIES, TYPES, Finding
from .sla import sla_days

bp = Blueprint("findings_admin", __name__)
PAGE_SIZE = 50
# Badge classes of tenantpilot/static/app.css.
SEVERITY_BADGE = {"critical": "bad", "high": "warn", "medium": "info", "low": "neutral"}
STATUS_BADGE = {"new": "info", "triaged": "warn", "in_progress": "info", "resolved": "ok"}
FILTERS = {"status": ALL_STATUSES, "severity": SEVERITIES, "type": TYPES}


@bp.app_template_global("findings_sla_days")
def findings_sla_days() -> dict:
    """SLA days per severity for the runbook's fragments (both planes); {} if misconfigured."""
    try:
        return sla_days()
    except ValueError:
        return {}


def start_message(result) -> str:
    """One line for a start result that created or found a run (UI flash and CLI)."""
    run_id = result.run.id if result.run is not None else None
    if result.status == "started":
        return f"{result.label} started (run #{run_id})."
    if result.status == "deduped":
        return f"{result.label} is already queued (run #{run_id})."
    return result.message


def start_backfill(tenant_id: int, source: str):
    """The tenant's backfill as the signed-in member (page and API): the start seam
    decides (membership, `tenant.manage`, the token's share, the control)."""
    return start_operation(KEY, scope=Scope("single_tenant", tenant_id=tenant_id), actor=Actor.human(current_user),
                           source=source)


def _filters() -> tuple[dict, list[str]]:
    chosen, errors = {}, []
    for name, allowed in FILTERS.items():
        value = request.args.get(name, "").strip()
        if not value:
            continue
        if value not in allowed:
            errors.append(f"Unknown {name} {value!r}. Choose one of: {', '.join(allowed)}.")
        else:
            chosen[name] = value
    return chosen, errors


def _cursor(name: str, errors: list[str]) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    value = parse_int(raw, minimum=1)
    if value is None:
        errors.append(f"Invalid page cursor {name}={raw[:40]!r}.")
    return value


def page_of(tenant_id: int, chosen: dict, before: int | None, after: int | None, limit: int = PAGE_SIZE):
    """Keyset pagination, newest first: `before` = ids below (Older), `after` = ids
    above (Newer). Served by the (tenant_id, id) / (tenant_id, status, id) indexes.
    The page and the API (``api.list_findings``) both read through here."""
    where = [Finding.tenant_id == tenant_id] + [getattr(Finding, k) == v for k, v in chosen.items()]
    q = select(Finding).where(*where)
    if after is not None:
        rows = db.session.scalars(q.where(Finding.id > after).order_by(Finding.id.asc()).limit(limit)).all()
        rows.reverse()
    else:
        if before is not None:
            q = q.where(Finding.id < before)
        rows = db.session.scalars(q.order_by(Finding.id.desc()).limit(limit)).all()
    # The neighbours and the total in one round trip (every view of the page asks).
    total_q = select(func.count()).select_from(Finding).where(*where).scalar_subquery()
    if not rows:
        return rows, False, False, db.session.scalar(select(total_q))
    older, newer, total = db.session.execute(select(
        exists().where(*where, Finding.id < rows[-1].id), exists().where(*where, Finding.id > rows[0].id),
        total_q)).one()
    return rows, bool(older), bool(newer), total


def _render(tenant_id: int, *, feedback=None, status: int = 200):
    tenant, membership = g.tenant, g.membership
    chosen, errors = _filters()
    before, after = _cursor("before", errors), _cursor("after", errors)
    if errors:
        rows, older, newer, total = [], False, False, 0
    else:
        rows, older, newer, total = page_of(tenant_id, chosen, before, after)
    can_backfill = "tenant.manage" in membership.capabilities and tenant.status == "active"
    last_backfill = db.session.scalars(
        select(OperationRun).where(OperationRun.tenant_id == tenant_id, OperationRun.type == KEY)
        .order_by(OperationRun.id.desc()).limit(1)
    ).first()
    body = render_template(
        "tenantpilot_findings/findings.html",
        tenant=tenant, membership=membership, findings=rows, total=total, filters=chosen,
        choices=FILTERS, legacy=LEGACY_STATUSES, errors=errors, older=older, newer=newer,
        can_backfill=can_backfill, decision=evaluate_control(KEY, tenant.workspace_id) if can_backfill else None,
        feedback=feedback, last_backfill=last_backfill, action_label="Backfill findings lifecycle",
        severity_badge=SEVERITY_BADGE, status_badge=STATUS_BADGE, now=utcnow(),
    )
    return body, 400 if errors and status == 200 else status


@bp.get("/t/<int:tenant_id>/findings")
@tenant_required("tenant.view")
def findings(tenant_id: int):
    return _render(tenant_id)


@bp.post("/t/<int:tenant_id>/findings/backfill")
@tenant_required("tenant.view")
def backfill(tenant_id: int):
    """Start the backfill for this tenant through the start seam. The seam checks the
    membership and `tenant.manage` again (403 for an operator, before any pause), then
    the control: a pause answers 409 with the paused message and creates nothing."""
    result = start_backfill(tenant_id, "tenant_ui")
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    if result.ok:
        flash(start_message(result), "info")
        return redirect(url_for("findings_admin.findings", tenant_id=tenant_id))
    # blocked (409), enqueue_failed (503), invalid (400): the page with the feedback.
    return _render(tenant_id, feedback=result, status=result.http_status)
