"""Review packs: request (new, reused or already queued), generation, signed download
links, and the daily prune.

A request goes through the start seam, so a pack is an ordinary operation run: the
``ReviewPack`` row is created in the run's own transaction (``attach``), and a second
request with the same options while one is queued is the seam's dedup. A ready pack with
the same options whose source data is unchanged (same fingerprint) is reused instead of
generating another. Every successful request records ``product.review_pack.requested``
after its commit; a refused one records nothing.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta

from flask import abort, current_app
from flask_babel import ngettext
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, select, update

from tenantpilot.api import TenantJob, TenantJobError
from tenantpilot.sdk import (Actor, ArtifactStoreError, OperationRun, Scope, StartResult, Tenant, artifact_info, db,
                             delete_artifacts, put_artifact, record_audit, record_event, setting, start_operation,
                             timestamp, utcnow)

from . import export
from .models import ReviewPack

log = logging.getLogger("tenantpilot.review_packs")
KEY = export.RUN_TYPE  # "review_pack.generate"
LABEL = "Generate review pack"
CAPABILITY = "review_packs.generate"
EVENT = "product.review_pack.requested"
SOURCE_SURFACE = "review_packs_page"
PRUNE_JOB = "review_packs.prune"
TOKEN_SALT = "tenantpilot.review-pack-download"
DEFAULT_EXPIRY_DAYS = 7
DEFAULT_LINK_SECONDS = 3600
# A ready pack is reused only while it stays downloadable for a while: handing someone a
# pack that expires a minute later would send them straight back to request a new one.
REUSE_MIN_REMAINING = timedelta(hours=1)
PRUNE_BATCH = 500
CONTENT_TYPE = "application/zip"
# The ZIP is built in memory up to this size, beyond it in a process-local temporary file
# (scratch space only: the pack itself goes to the artifact store).
BUILD_MEMORY_BYTES = 16 * 1024 * 1024
# The artifact outlives its pack's expiry by this much, so the daily prune (which audits)
# deletes it; the core's sweep of expired artifacts only catches what nothing else did.
ARTIFACT_GRACE = timedelta(days=2)


# --- settings --------------------------------------------------------------------------

def expiry() -> timedelta:
    """How long a pack stays downloadable (TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS, default 7)."""
    return timedelta(days=int(setting("TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS")))


def link_seconds() -> int:
    """Lifetime of one signed download link (TENANTPILOT_REVIEW_PACK_LINK_SECONDS, default
    3600). The page signs a fresh link on every render."""
    return int(setting("TENANTPILOT_REVIEW_PACK_LINK_SECONDS"))


def has_artifact(pack: ReviewPack) -> bool:
    """Whether the pack's bytes are in the artifact store (a pack from before the store,
    or whose artifact was swept, has none)."""
    return pack.artifact_id is not None and artifact_info(pack.artifact_id) is not None


def download_name(pack: ReviewPack) -> str:
    return f"review-pack-{pack.id}-{pack.generated_at:%Y%m%d}.zip"


# --- status ----------------------------------------------------------------------------

def display_status(pack: ReviewPack, now=None) -> str:
    """queued | ready | failed | expired, as members see it. A queued pack whose run ended
    without it (the completion hook never ran, e.g. the process died) shows as failed."""
    if pack.status == "ready":
        return "expired" if pack.is_expired(now) else "ready"
    if pack.status == "queued" and pack.operation_run is not None and pack.operation_run.status == "completed":
        return "failed"
    return pack.status


def pack_or_404(tenant_id: int, pack_id: int) -> ReviewPack:
    pack = db.session.get(ReviewPack, pack_id)
    if pack is None or pack.tenant_id != tenant_id:
        abort(404)  # another tenant's pack: do not say it exists
    return pack


# --- request ---------------------------------------------------------------------------

@dataclass
class RequestOutcome:
    """What a request did. status: started | deduped | reused, or the seam's refusal
    (forbidden, not_found, blocked, invalid, enqueue_failed)."""

    status: str
    pack: ReviewPack | None = None
    start: StartResult | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("started", "deduped", "reused")

    @property
    def http_status(self) -> int:
        if self.ok:
            return 200
        if self.start is not None:
            return self.start.http_status
        return {"forbidden": 403, "not_found": 404}.get(self.status, 400)


def reusable_pack(tenant_id: int, include_operations: bool, include_pii: bool, now=None) -> ReviewPack | None:
    """The newest ready pack with these options that is still valid for a while, its
    artifact present and its source data unchanged since it was built; else None."""
    now = now or utcnow()
    pack = db.session.scalars(
        select(ReviewPack).where(ReviewPack.tenant_id == tenant_id, ReviewPack.status == "ready",
                                 ReviewPack.include_operations.is_(include_operations),
                                 ReviewPack.include_pii.is_(include_pii),
                                 ReviewPack.expires_at > now + REUSE_MIN_REMAINING)
        .order_by(ReviewPack.id.desc()).limit(1)).first()
    if pack is None or not has_artifact(pack):
        return None
    if pack.data_fingerprint != export.data_fingerprint(tenant_id, include_operations, include_pii):
        return None
    return pack


def request_pack(tenant: Tenant, user, *, include_operations: bool, include_pii: bool,
                 source_surface: str = SOURCE_SURFACE, source: str = "tenant_ui") -> RequestOutcome:
    """Request a pack for ``tenant`` as tenant user ``user``: reuse an identical ready one,
    or start (or join, when one is already queued) a generation run. Records the telemetry
    event after a successful request, never for a refused one."""
    include_operations, include_pii = bool(include_operations), bool(include_pii)
    actor = Actor.human(user)
    membership = user.membership_for(tenant.workspace_id)
    if membership is None or tenant.is_platform:
        return RequestOutcome("not_found", message="Not found.")
    if CAPABILITY not in membership.capabilities:
        return RequestOutcome("forbidden", message="You do not have permission to request review packs.")

    if tenant.status == "active":
        reused = reusable_pack(tenant.id, include_operations, include_pii)
        if reused is not None:
            _record(tenant, user, reused, include_operations, include_pii, source_surface)
            return RequestOutcome("reused", reused, message=(
                f"An identical review pack #{reused.id} is ready: the data has not changed since it was "
                f"generated, so it was reused. Download it below."))

    created: list[ReviewPack] = []

    def attach(run: OperationRun) -> None:
        now = utcnow()
        pack = ReviewPack(workspace_id=tenant.workspace_id, tenant_id=tenant.id, operation_run_id=run.id,
                          status="queued", include_operations=include_operations, include_pii=include_pii,
                          row_counts={}, requested_by_user_id=user.id, requested_by_name=user.name,
                          created_at=now, expires_at=now + expiry())
        db.session.add(pack)
        db.session.flush()
        record_audit("review_pack.requested", actor=actor, workspace_id=tenant.workspace_id, tenant_id=tenant.id,
                     target=("review_pack", pack.id, f"Review pack #{pack.id}"),
                     summary=f"Review pack #{pack.id} requested",
                     metadata={"review_pack_id": pack.id, "operation_run_id": run.id,
                               "include_operations": include_operations, "include_pii": include_pii},
                     commit=False)
        created.append(pack)

    options = {"include_operations": include_operations, "include_pii": include_pii}
    result = start_operation(KEY, scope=Scope("single_tenant", tenant_id=tenant.id), actor=actor, source=source,
                             identity_inputs=options, context=options, attach=attach)
    if result.status == "started":
        pack = created[0]
        _record(tenant, user, pack, include_operations, include_pii, source_surface)
        return RequestOutcome("started", pack, result,
                              f"Review pack #{pack.id} requested: it is being generated (operation run "
                              f"#{result.run.id}).")
    if result.status == "deduped":
        pack = db.session.scalars(select(ReviewPack).where(ReviewPack.operation_run_id == result.run.id)).first()
        _record(tenant, user, pack, include_operations, include_pii, source_surface)
        label = f"Review pack #{pack.id}" if pack else "A review pack"
        return RequestOutcome("deduped", pack, result,
                              f"{label} with these options is already being generated (operation run "
                              f"#{result.run.id}); it was not requested twice.")
    # Refused (forbidden, not_found, blocked, invalid) or the queue was down (the run and
    # its pack are marked failed): not a successful request, so no telemetry.
    return RequestOutcome(result.status, created[0] if created else None, result, result.message)


def _record(tenant, user, pack, include_operations: bool, include_pii: bool, source_surface: str) -> None:
    record_event(EVENT, workspace_id=tenant.workspace_id, tenant_id=tenant.id, user_id=user.id,
                     subject_type="review_pack", subject_id=str(pack.id) if pack else None,
                     metadata={"source_surface": source_surface, "include_operations": include_operations,
                               "include_pii": include_pii})


# --- generation ------------------------------------------------------------------------

def generate(job: TenantJob) -> dict:
    """Executor of "Generate review pack": build the pack's ZIP into the artifact store,
    then mark the row ready with its artifact, size, sha256 and fingerprint. The artifact's
    chunks and the row are committed together by the ledger with the tenant's result, so a
    download never sees a half-written pack and a failed build leaves none. A re-executed
    job for a pack already built changes nothing."""
    pack = db.session.scalars(select(ReviewPack).where(ReviewPack.operation_run_id == job.run_id)).first()
    if pack is None:
        raise TenantJobError("review_pack_missing", "The review pack of this run no longer exists.")
    if pack.status == "ready" and has_artifact(pack):
        return _counts(pack.row_counts)
    tenant = db.session.get(Tenant, job.tenant_id)
    fingerprint = export.data_fingerprint(tenant.id, pack.include_operations, pack.include_pii)
    now = utcnow()
    expires_at = now + expiry()
    try:
        with tempfile.SpooledTemporaryFile(max_size=BUILD_MEMORY_BYTES) as scratch:
            counts = export.build(scratch, pack_id=pack.id, tenant=tenant,
                                  include_operations=pack.include_operations, include_pii=pack.include_pii,
                                  requested_by=pack.requested_by_name, generated_at=now, expires_at=expires_at,
                                  fingerprint=fingerprint)
            scratch.seek(0)
            artifact_id = put_artifact(scratch, name=f"review-pack-{pack.id}-{now:%Y%m%d}.zip",
                                       content_type=CONTENT_TYPE, owner=f"review_pack:{pack.id}",
                                       expires_at=expires_at + ARTIFACT_GRACE)
    except (OSError, ArtifactStoreError) as exc:
        log.error("review pack could not be stored", extra={"review_pack_id": pack.id,
                                                            "error": type(exc).__name__})
        raise TenantJobError("storage_failed", "The review pack file could not be written.") from None
    stored = artifact_info(artifact_id)
    pack.status, pack.artifact_id, pack.file_size, pack.sha256 = "ready", artifact_id, stored.size, stored.sha256
    pack.data_fingerprint, pack.row_counts = fingerprint, counts
    pack.generated_at, pack.expires_at, pack.failure_reason = now, expires_at, None
    return _counts(counts)


def _counts(rows: dict) -> dict:
    counts = {k: int(v) for k, v in (rows or {}).items() if k in ("findings", "operation_runs", "stored_reports")}
    return {"items": sum(counts.values()), **counts}


def mark_failed(run) -> None:
    """The run ended without a ready pack (failed, cancelled, queue down): say so on the
    pack with the run's first reason code."""
    reason = next((f.get("reason_code") for f in (run.failure_summary or []) if f.get("reason_code")), None)
    db.session.execute(
        update(ReviewPack).where(ReviewPack.operation_run_id == run.id, ReviewPack.status == "queued")
        .values(status="failed", failure_reason=(reason or run.outcome)[:60])
        .execution_options(synchronize_session=False))
    db.session.commit()


# --- signed download links -------------------------------------------------------------

class _AppClockSigner(TimestampSigner):
    """Dates and ages links by the app's clock (tenantpilot.timeutil), not time.time()."""

    def get_timestamp(self) -> int:
        return int(timestamp())


def _serializer() -> URLSafeTimedSerializer:
    # The app secret (and its fallbacks, so a key rotation does not break fresh links)
    # with a salt of its own: a session cookie can never pass as a download token.
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or []), current_app.secret_key]
    return URLSafeTimedSerializer(keys, salt=TOKEN_SALT, signer=_AppClockSigner)


def download_token(pack: ReviewPack) -> str:
    """A signed token naming this pack and its tenant; valid for link_seconds()."""
    return _serializer().dumps({"pack": pack.id, "tenant": pack.tenant_id})


def check_token(token: str, pack: ReviewPack) -> str:
    """"ok", "expired" (a genuine link past its lifetime) or "invalid" (tampered, or
    signed for another pack or tenant)."""
    try:
        data = _serializer().loads(token or "", max_age=link_seconds())
    except SignatureExpired:
        return "expired"
    except BadSignature:
        return "invalid"
    if not isinstance(data, dict) or data.get("pack") != pack.id or data.get("tenant") != pack.tenant_id:
        return "invalid"
    return "ok"


# --- prune -----------------------------------------------------------------------------

def prune(now=None, actor_name: str = "Scheduler") -> int:
    """Delete expired packs (rows and artifacts) in batches; returns how many rows."""
    now = now or utcnow()
    deleted = 0
    while True:
        ids = list(db.session.scalars(select(ReviewPack.id).where(ReviewPack.expires_at <= now)
                                      .order_by(ReviewPack.id).limit(PRUNE_BATCH)))
        if not ids:
            break
        artifact_ids = db.session.scalars(
            delete(ReviewPack).where(ReviewPack.id.in_(ids), ReviewPack.expires_at <= now)
            .returning(ReviewPack.artifact_id).execution_options(synchronize_session=False)).all()
        # The rows and their artifacts go in one transaction (delete_artifacts commits);
        # a bucket object is removed after it, so a crash leaves an unreferenced object,
        # never a pack whose bytes are missing.
        delete_artifacts(artifact_ids)
        db.session.commit()
        deleted += len(ids)
    if deleted:
        # Platform-plane housekeeping event: a count only, no names, paths or tokens.
        record_audit("review_packs.pruned", actor=Actor.system(actor_name),
                     target=("review_pack", None, "Expired review packs"),
                     summary=ngettext("Deleted %(num)d expired review pack", "Deleted %(num)d expired review packs",
                                      deleted), metadata={"deleted": deleted})
    return deleted


def prune_job() -> None:
    """The scheduler's daily run (ScheduledJob review_packs.prune)."""
    deleted = prune()
    log.info("review packs pruned", extra={"deleted": deleted})
