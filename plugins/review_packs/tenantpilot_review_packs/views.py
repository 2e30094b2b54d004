"""Tenant plane: review packs (/admin/t/<tenant>/review-packs).

Members see the list and download ready packs through signed, expiring links; requesting
a pack needs ``review_packs.generate``. Page renders (and the polled table) write nothing:
no telemetry, no audit.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import BooleanField, ValidationError

from tenantpilot.sdk import (Actor, ArtifactMissing, SafeForm, db, record_audit, send_artifact, tenant_required,
                             utcnow)
from . import export, service
from .models import ReviewPack

bp = Blueprint("review_packs_admin", __name__)
PAGE_SIZE = 50
CHECKED = ("y", "on", "1", "true")


def _strict_checkbox(form, field):
    # A checkbox posts "y" or nothing; anything else is a forged or broken form, refused
    # rather than guessed (a wrong guess could put personal data into a pack).
    raw = field.raw_data[0] if field.raw_data else None
    if raw is not None and raw.lower() not in CHECKED:
        raise ValidationError("Tick the box or leave it empty.")


class RequestForm(SafeForm):
    include_operations = BooleanField("Include operations", validators=[_strict_checkbox])
    include_pii = BooleanField("Include personal data (PII)", validators=[_strict_checkbox])


def _can_request() -> bool:
    return service.CAPABILITY in g.membership.capabilities


def _list_args(**kw) -> dict:
    packs = db.session.scalars(select(ReviewPack).where(ReviewPack.tenant_id == g.tenant.id)
                               .order_by(ReviewPack.id.desc()).limit(PAGE_SIZE)).all()
    now = utcnow()
    statuses = {p.id: service.display_status(p, now) for p in packs}
    links = {p.id: url_for(".download", tenant_id=g.tenant.id, pack_id=p.id, token=service.download_token(p))
             for p in packs if statuses[p.id] == "ready"}
    return {"tenant": g.tenant, "membership": g.membership, "packs": packs, "statuses": statuses, "links": links,
            "polling": any(s == "queued" for s in statuses.values()),
            "can_request": _can_request() and g.tenant.status == "active",
            "expiry_days": service.expiry().days, "recent_runs": export.RECENT_RUNS_LIMIT,
            "link_minutes": max(1, service.link_seconds() // 60), **kw}


@bp.get("/t/<int:tenant_id>/review-packs")
@tenant_required("tenant.view")
def review_packs(tenant_id: int):
    return render_template("tenantpilot_review_packs/review_packs.html", form=RequestForm(formdata=None),
                           **_list_args())


@bp.get("/t/<int:tenant_id>/review-packs/live")
@tenant_required("tenant.view")
def review_packs_live(tenant_id: int):
    """The pack table, polled by htmx while a pack is being generated."""
    return render_template("tenantpilot_review_packs/_packs.html", **_list_args())


@bp.post("/t/<int:tenant_id>/review-packs")
@tenant_required("tenant.view")
def request_pack(tenant_id: int):
    """Request a pack: 403 without review_packs.generate, 400 for a broken form, 409 on an
    archived tenant; otherwise a new, reused or already queued pack (see the service)."""
    if not _can_request():
        abort(403)
    form = RequestForm()
    if not form.validate():
        return render_template("tenantpilot_review_packs/review_packs.html", form=form, **_list_args()), 400
    if g.tenant.status != "active":
        return render_template("tenantpilot_review_packs/review_packs.html", form=form, **_list_args(
            refusal="This tenant is archived: new review packs cannot be generated.")), 409
    outcome = service.request_pack(g.tenant, current_user, include_operations=form.include_operations.data,
                                   include_pii=form.include_pii.data)
    if outcome.status in ("forbidden", "not_found"):
        abort(outcome.http_status)
    if not outcome.ok:  # blocked (409), queue unreachable (503), invalid (400)
        return render_template("tenantpilot_review_packs/review_packs.html", form=form,
                               **_list_args(feedback=outcome.start)), outcome.http_status
    flash(outcome.message, "info")
    return redirect(url_for(".review_packs", tenant_id=tenant_id))


def _gone():
    return render_template("errors/error.html", code=410, title="Link expired",
                           message="This download link has expired. Open the tenant's Review packs page for a "
                                   "fresh link, or request a new pack.",
                           layout="admin/layout.html"), 410


@bp.get("/t/<int:tenant_id>/review-packs/<int:pack_id>/download")
@tenant_required("tenant.view")
def download(tenant_id: int, pack_id: int):
    """Serve a ready pack for a valid signed link: membership first (404), then the
    token: tampered or foreign → 403, past its lifetime or the pack expired → 410."""
    pack = service.pack_or_404(tenant_id, pack_id)
    verdict = service.check_token(request.args.get("token", ""), pack)
    if verdict == "invalid":
        abort(403)
    if verdict == "expired" or pack.is_expired():
        return _gone()
    if service.display_status(pack) != "ready":
        abort(404)  # no file to serve (still generating, or failed)
    if not service.has_artifact(pack):
        return _gone()  # built before the artifact store, or its bytes were swept
    record_audit("review_pack.downloaded", actor=Actor.human(current_user), workspace_id=pack.workspace_id,
                 tenant_id=pack.tenant_id, target=("review_pack", pack.id, f"Review pack #{pack.id}"),
                 summary=f"Review pack #{pack.id} downloaded",
                 metadata={"review_pack_id": pack.id, "include_operations": pack.include_operations,
                           "include_pii": pack.include_pii})
    try:
        # Streamed from the artifact store (database or bucket), chunk by chunk: this web
        # process need not share a disk with the worker that built the pack.
        return send_artifact(pack.artifact_id, download_name=service.download_name(pack),
                             cache_control="private, no-store")  # may hold personal data
    except ArtifactMissing:
        return _gone()
