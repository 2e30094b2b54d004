"""/admin/api/v1/tenants/<tenant>/review-packs: request a pack as the Review packs page
does (same service call: reuse an identical ready pack, join a queued one, or start a
generation run) and read one pack's status, with a signed link to the page's download
route once it is ready. The file itself is served by that route only."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask_login import current_user

from tenantpilot.sdk import (ApiBlueprint, RunSummarySchema, api_problem, api_refuse_unstarted, hookimpl, iso_utc,
                             run_summary, tenant_required, utcnow)
from . import service

bp = ApiBlueprint("review_packs_api", __name__, url_prefix="/tenants/<int:tenant_id>/review-packs",
                  tag="Review packs",
                  description="Review packs of one tenant: request one, then poll it until it is ready.")
SOURCE_SURFACE = "api"  # the telemetry event's source_surface for requests made here


class StrictBoolean(ma.fields.Boolean):
    """JSON true/false only: a guess ("yes", 1, "maybe") could put personal data into a
    pack, so anything else is a 422, as the page refuses a forged checkbox."""

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, bool):
            raise ma.ValidationError("Must be true or false.")
        return value


class RequestSchema(ma.Schema):
    include_operations = StrictBoolean(load_default=False, metadata={"description": "Add recent operation runs."})
    include_pii = StrictBoolean(load_default=False, metadata={"description": "Add personal data (names)."})


class PackSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, metadata={"description": "queued | ready | failed | expired"})
    include_operations = ma.fields.Boolean(required=True)
    include_pii = ma.fields.Boolean(required=True)
    row_counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)
    file_size = ma.fields.Integer(allow_none=True)
    sha256 = ma.fields.String(allow_none=True)
    failure_reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.String(required=True)
    generated_at = ma.fields.String(allow_none=True)
    expires_at = ma.fields.String(required=True)
    operation_run_id = ma.fields.Integer(allow_none=True)
    download_url = ma.fields.String(allow_none=True, metadata={
        "description": "When ready: a signed link to the Review packs page's download route (a signed-in "
                       "browser session of a member downloads it; the link expires after download_url_expires_in "
                       "seconds — read this pack again for a fresh one)."})
    download_url_expires_in = ma.fields.Integer(allow_none=True)


class RequestResultSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "started | deduped | reused"})
    message = ma.fields.String(required=True)
    pack = ma.fields.Nested(PackSchema, required=True)
    run = ma.fields.Nested(RunSummarySchema, allow_none=True,
                           metadata={"description": "The generation run (null for a reused pack)."})


def pack_view(pack, now=None) -> dict:
    now = now or utcnow()
    status = service.display_status(pack, now)
    ready = status == "ready"
    return {
        "id": pack.id, "status": status, "include_operations": pack.include_operations,
        "include_pii": pack.include_pii, "row_counts": dict(pack.row_counts or {}), "file_size": pack.file_size,
        "sha256": pack.sha256, "failure_reason": pack.failure_reason, "created_at": iso_utc(pack.created_at),
        "generated_at": iso_utc(pack.generated_at) if pack.generated_at else None,
        "expires_at": iso_utc(pack.expires_at), "operation_run_id": pack.operation_run_id,
        "download_url": url_for("review_packs_admin.download", tenant_id=pack.tenant_id, pack_id=pack.id,
                                token=service.download_token(pack)) if ready else None,
        "download_url_expires_in": service.link_seconds() if ready else None,
    }


@bp.route("", methods=["POST"])
@tenant_required("tenant.view")
@bp.arguments(RequestSchema)
@bp.response(201, RequestResultSchema, description="A new pack is being generated.")
@bp.alt_response(200, schema=RequestResultSchema,
                 description="Not generated again: an identical ready pack (reused) or the queued one (deduped).")
def request_pack(tenant_id: int, body: dict):
    """Request a review pack, as the Review packs page: new, reused or already queued.

    403 without review_packs.generate; 409 `tenant-archived` on an archived tenant."""
    if service.CAPABILITY not in g.membership.capabilities:
        api_problem(403, detail=f"Requesting review packs needs the capability {service.CAPABILITY}.")
    if g.tenant.status != "active":
        api_problem(409, "tenant-archived", "Tenant archived",
                    "This tenant is archived: new review packs cannot be generated.")
    outcome = service.request_pack(g.tenant, current_user, include_operations=body["include_operations"],
                                   include_pii=body["include_pii"], source_surface=SOURCE_SURFACE, source="api")
    start = outcome.start
    if not outcome.ok:
        if start is not None:
            api_refuse_unstarted(start)  # paused, forbidden, queue down: as every start answers
        api_problem(400, detail=outcome.message)
    run = start.run if start is not None else None
    return ({"status": outcome.status, "message": outcome.message, "pack": pack_view(outcome.pack),
             "run": run_summary(run, "admin") if run is not None else None},
            201 if outcome.status == "started" else 200)


@bp.route("/<int:pack_id>", methods=["GET"])
@tenant_required("tenant.view")
@bp.response(200, PackSchema)
def get_pack(tenant_id: int, pack_id: int):
    """One review pack's status (404 for another tenant's pack), with its download link when ready."""
    return pack_view(service.pack_or_404(tenant_id, pack_id))


@hookimpl
def tenantpilot_register_api_blueprints(app, plane):
    return bp if plane == "admin" else None
