"""Onboarding drafts: validation, the checkpoint transitions and the access verification.

Every transition is one conditional UPDATE (``… WHERE checkpoint = <the one before>``),
so a double submit, or two people on the same draft, completes a checkpoint once. The
request that wins writes the audit event in the same transaction and, after the commit,
the telemetry event — only once a tenant is linked (SPEC 6: nothing for pre-tenant
drafts, nothing for re-saves, failures or page renders).

``verify_access`` is an operation run started through the start seam; its executor asks
the tenant's provider for the granted permissions and role assignments and stores the
result on the draft. The checkpoint completes when that run succeeded, in the
``tenantpilot_run_completed`` hook (or, should that hook have been lost with its process,
when the user presses "Continue" on the draft).
"""
from __future__ import annotations

import logging
import re

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from tenantpilot.api import ProviderError, TenantJob, TenantJobError
from tenantpilot.sdk import (Actor, OperationRun, Scope, Tenant, User, db, provider_client, provider_connection,
                             record_audit, record_event, save_provider_connection, setting, start_operation, utcnow)

from .models import OnboardingDraft

log = logging.getLogger("tenantpilot.onboarding")

CHECKPOINTS = ("identify", "connect_provider", "verify_access", "ready_for_activation", "activated")
# The lifecycle state each checkpoint leaves the draft in (telemetry's lifecycle_state).
LIFECYCLE = {
    "identify": "identified",
    "connect_provider": "provider_connected",
    "verify_access": "access_verified",
    "ready_for_activation": "ready_for_activation",
    "activated": "activated",
}
STEP_LABELS = {
    "identify": "Identify",
    "connect_provider": "Connect provider",
    "verify_access": "Verify access",
    "ready_for_activation": "Review",
    "activated": "Activate",
}
STATE_BADGES = {  # lifecycle state → (label, badge)
    "identified": ("Identified", "neutral"),
    "provider_connected": ("Provider connected", "info"),
    "access_verified": ("Access verified", "info"),
    "ready_for_activation": ("Ready for activation", "warn"),
    "activated": ("Activated", "ok"),
}
EVENT = "product.onboarding.checkpoint_completed"
SUBJECT_TYPE = "onboarding_draft"
MANAGE = "tenant.manage"
VERIFY_KEY = "onboarding.verify_access"
VERIFY_LABEL = "Verify tenant access"
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The application permissions TenantPilot's features use (backups, restores, reports).
# A deployment may narrow or extend them with TENANTPILOT_ONBOARDING_REQUIRED_PERMISSIONS.
DEFAULT_REQUIRED_PERMISSIONS = (
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementManagedDevices.Read.All",
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "RoleManagement.Read.Directory",
)


# --- reading ---------------------------------------------------------------------------

def next_checkpoint(draft: OnboardingDraft) -> str | None:
    """The checkpoint the draft is working towards (None once activated)."""
    i = CHECKPOINTS.index(draft.checkpoint) + 1
    return CHECKPOINTS[i] if i < len(CHECKPOINTS) else None


def completed_count(draft: OnboardingDraft) -> int:
    """How many of the five checkpoints the draft has completed."""
    return CHECKPOINTS.index(draft.checkpoint) + 1


def reached(draft: OnboardingDraft, checkpoint: str) -> bool:
    """Whether ``checkpoint`` is completed on this draft."""
    return CHECKPOINTS.index(draft.checkpoint) >= CHECKPOINTS.index(checkpoint)


def required_permissions() -> tuple[str, ...]:
    """The permissions a verification checks for (app config, else the default set)."""
    return tuple(setting("TENANTPILOT_ONBOARDING_REQUIRED_PERMISSIONS") or DEFAULT_REQUIRED_PERMISSIONS)


def drafts_of(workspace_id: int, limit: int = 200) -> list[OnboardingDraft]:
    """A workspace's drafts: open ones first, newest first."""
    return list(db.session.scalars(
        select(OnboardingDraft).where(OnboardingDraft.workspace_id == workspace_id)
        .order_by((OnboardingDraft.lifecycle_state == "activated").asc(), OnboardingDraft.id.desc()).limit(limit)))


# --- validation ------------------------------------------------------------------------

def normalize_guid(value: str | None) -> str:
    """GUIDs are compared and stored lower case, without surrounding spaces or braces."""
    return (value or "").strip().strip("{}").lower()


def guid_error(guid: str, exclude_draft_id: int | None = None) -> str | None:
    """Why ``guid`` (normalized) cannot identify a new tenant, or None: it must be a GUID
    that no tenant and no other open draft uses."""
    if not GUID_RE.match(guid):
        return "Enter the Entra tenant ID as a GUID, like 00000000-0000-0000-0000-000000000000."
    if guid_taken_by_tenant(guid):
        return "A tenant with this Entra tenant ID already exists."
    q = select(OnboardingDraft.id).where(func.lower(OnboardingDraft.external_id) == guid,
                                         OnboardingDraft.lifecycle_state != "activated")
    if exclude_draft_id is not None:
        q = q.where(OnboardingDraft.id != exclude_draft_id)
    if db.session.scalars(q.limit(1)).first() is not None:
        return "Another onboarding draft already uses this Entra tenant ID."
    return None


def guid_taken_by_tenant(guid: str) -> bool:
    """Whether any tenant (of any workspace or status) has this GUID."""
    return db.session.scalars(select(Tenant.id).where(func.lower(Tenant.external_id) == guid).limit(1)).first() is not None


# --- transitions -----------------------------------------------------------------------

def _transition(draft: OnboardingDraft, checkpoint: str, user_id: int | None, now, *where, **values) -> bool:
    """Complete ``checkpoint`` when the draft stands right before it (no commit). The
    caller has checked ``draft.checkpoint`` on the row it loaded, so ``completed`` is
    extended from the current map."""
    before = CHECKPOINTS[CHECKPOINTS.index(checkpoint) - 1]
    result = db.session.execute(
        update(OnboardingDraft)
        .where(OnboardingDraft.id == draft.id, OnboardingDraft.checkpoint == before, *where)
        .values(checkpoint=checkpoint, lifecycle_state=LIFECYCLE[checkpoint],
                completed={**(draft.completed or {}), checkpoint: now.isoformat()},
                updated_at=now, updated_by_user_id=user_id, **values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def _audit_transition(draft: OnboardingDraft, checkpoint: str, actor: Actor, tenant_id: int | None) -> None:
    record_audit(
        "onboarding.checkpoint_completed", actor=actor, workspace_id=draft.workspace_id, tenant_id=tenant_id,
        target=("onboarding_draft", draft.id, draft.display_name),
        summary=f"Onboarding checkpoint completed: {STEP_LABELS[checkpoint]}",
        metadata={"draft_id": draft.id, "checkpoint": checkpoint, "lifecycle_state": LIFECYCLE[checkpoint],
                  "tenant_id": tenant_id},
        commit=False,
    )


def _record(draft_id: int, workspace_id: int, tenant_id: int | None, user_id: int | None, checkpoint: str,
            completed_at) -> bool:
    """The telemetry event of a committed transition: ids and tokens only (no names, no
    e-mails), and only with a linked tenant and a person behind it."""
    if tenant_id is None or user_id is None:
        return False
    try:
        return record_event(
            EVENT, workspace_id=workspace_id, tenant_id=tenant_id, user_id=user_id,
            subject_type=SUBJECT_TYPE, subject_id=str(draft_id), occurred_at=completed_at,
            metadata={"checkpoint_key": checkpoint, "lifecycle_state": LIFECYCLE[checkpoint],
                      "completed_at": completed_at})
    except Exception:  # the recorder never raises; this guards the user's step regardless
        log.exception("onboarding telemetry not recorded for draft %s", draft_id)
        return False


def create_draft(workspace_id: int, display_name: str, guid: str, user) -> OnboardingDraft | None:
    """Complete ``identify``: a new draft, no tenant yet (so no telemetry). None when a
    concurrent request claimed the GUID first (the open-draft unique index)."""
    now = utcnow()
    draft = OnboardingDraft(workspace_id=workspace_id, display_name=display_name, external_id=guid,
                            checkpoint="identify", lifecycle_state=LIFECYCLE["identify"],
                            completed={"identify": now.isoformat()}, created_by_user_id=user.id,
                            updated_by_user_id=user.id, created_at=now, updated_at=now)
    db.session.add(draft)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    _audit_transition(draft, "identify", Actor.human(user), None)
    db.session.commit()
    return draft


def update_identity(draft: OnboardingDraft, display_name: str, guid: str, user) -> str:
    """Re-save ``identify`` while no tenant is linked: no checkpoint change, no telemetry.
    Returns ``updated``, ``unchanged``, ``locked`` (a tenant is linked) or ``guid_taken``."""
    if draft.tenant_id is not None:
        return "locked"
    changed = sorted(k for k, v in (("display_name", display_name), ("external_id", guid)) if getattr(draft, k) != v)
    if not changed:
        return "unchanged"
    try:
        result = db.session.execute(
            update(OnboardingDraft).where(OnboardingDraft.id == draft.id, OnboardingDraft.tenant_id.is_(None))
            .values(display_name=display_name, external_id=guid, updated_at=utcnow(), updated_by_user_id=user.id)
            .execution_options(synchronize_session=False))
    except IntegrityError:
        db.session.rollback()
        return "guid_taken"
    if result.rowcount != 1:
        db.session.rollback()
        return "locked"
    record_audit("onboarding.draft_updated", actor=Actor.human(user), workspace_id=draft.workspace_id,
                 target=("onboarding_draft", draft.id, display_name),
                 summary="Onboarding draft details updated", metadata={"draft_id": draft.id, "changed": changed},
                 commit=False)
    db.session.commit()
    return "updated"


def verification_active(draft: OnboardingDraft) -> bool:
    """Whether the draft's verification run is still queued or running."""
    run = draft.verification_run
    return run is not None and run.is_active


def connect_provider(draft: OnboardingDraft, provider, values: dict, user) -> str:
    """Complete ``connect_provider``: create the tenant (``onboarding``: in no run but its
    own verification until activated), link it to the draft
    and save its provider connection, all in one transaction; then record telemetry.

    Before verification a second save only replaces the connection settings (no
    checkpoint change, no telemetry). Returns ``connected``, ``updated``, ``busy`` (a
    verification is running), ``locked`` (past this step), ``stale`` (someone else
    completed it meanwhile) or ``guid_taken``."""
    actor = Actor.human(user)
    now = utcnow()
    if draft.checkpoint == "connect_provider" and draft.tenant is not None:
        if verification_active(draft):
            return "busy"
        try:
            # New settings invalidate an earlier verification result.
            db.session.execute(
                update(OnboardingDraft).where(OnboardingDraft.id == draft.id,
                                              OnboardingDraft.checkpoint == "connect_provider")
                .values(provider=provider.name, verification=None, verification_run_id=None, updated_at=now,
                        updated_by_user_id=user.id).execution_options(synchronize_session=False))
            save_provider_connection(draft.tenant, provider, values, actor)  # commits both
        except Exception:
            db.session.rollback()
            raise
        return "updated"
    if draft.checkpoint != "identify":
        return "locked"
    ids = (draft.id, draft.workspace_id)
    try:
        if not _transition(draft, "connect_provider", user.id, now, OnboardingDraft.tenant_id.is_(None),
                           provider=provider.name):
            db.session.rollback()
            return "stale"
        if guid_taken_by_tenant(draft.external_id):
            db.session.rollback()
            return "guid_taken"
        tenant = Tenant(workspace_id=draft.workspace_id, name=draft.display_name, external_id=draft.external_id,
                        status="onboarding", is_platform=False)
        db.session.add(tenant)
        db.session.flush()
        db.session.execute(update(OnboardingDraft).where(OnboardingDraft.id == draft.id)
                           .values(tenant_id=tenant.id).execution_options(synchronize_session=False))
        _audit_transition(draft, "connect_provider", actor, tenant.id)
        tenant_id = tenant.id
        # save_connection flushes the connection, audits it and commits: tenant,
        # connection, draft and both audit rows land together or not at all.
        save_provider_connection(tenant, provider, values, actor)
    except IntegrityError:
        db.session.rollback()
        return "guid_taken"
    except Exception:
        db.session.rollback()
        raise
    _record(ids[0], ids[1], tenant_id, user.id, "connect_provider", now)
    return "connected"


def start_verification(draft: OnboardingDraft, user):
    """Start ``verify_access`` through the start seam (one active run per draft). The
    draft points at the new run from the transaction that creates it."""
    draft_id = draft.id

    def attach(run: OperationRun) -> None:
        db.session.execute(update(OnboardingDraft).where(OnboardingDraft.id == draft_id)
                           .values(verification_run_id=run.id, verification=None)
                           .execution_options(synchronize_session=False))

    result = start_operation(VERIFY_KEY, scope=Scope("single_tenant", tenant_id=draft.tenant_id), actor=Actor.human(user),
                        source="tenant_ui", identity_inputs={"draft_id": draft_id}, context={"draft_id": draft_id},
                        attach=attach)
    db.session.expire_all()  # attach wrote behind the ORM's back
    return result


def execute_verification(job: TenantJob) -> dict:
    """Executor of ``onboarding.verify_access``: ask the provider, store the result on
    the draft. Read-only at the vendor, so a repeated job is harmless; no commit (the
    ledger commits the result with the tenant's row). Missing permissions are a result,
    not a failure: the review step shows them. A provider that cannot be reached fails
    the run, and the user verifies again."""
    draft = db.session.get(OnboardingDraft, job.context.get("draft_id"))
    if draft is None or draft.tenant_id != job.tenant_id:
        raise TenantJobError("draft_missing", "The onboarding draft of this verification was not found.")
    if draft.verification_run_id != job.run_id:
        raise TenantJobError("superseded", "The connection changed after this verification was started.")
    try:
        client = provider_client(job.tenant_id)
        granted = set(client.granted_permissions())
        roles = client.directory_role_assignments()
    except ProviderError as exc:
        raise TenantJobError(exc.reason_code, exc.message) from None
    required = required_permissions()
    missing = sorted(set(required) - granted)
    now = utcnow()
    draft.verification = {
        "ok": not missing, "missing_permissions": missing, "required_count": len(required),
        "granted_count": len(granted), "role_assignment_count": len(roles),
        "roles": sorted({r.role for r in roles}), "run_id": job.run_id, "checked_at": now.isoformat(),
    }
    conn = provider_connection(job.tenant_id)
    if conn is not None:  # the provider answered: the connection works
        conn.health, conn.last_error_code, conn.last_error_message, conn.last_checked_at = "healthy", None, None, now
    return {"processed": 1, "permissions_granted": len(granted & set(required)), "permissions_missing": len(missing),
            "role_assignments": len(roles)}


def on_run_completed(run: OperationRun) -> None:
    """``tenantpilot_run_completed``: a succeeded verification completes its draft's
    ``verify_access`` checkpoint, on behalf of the person who started it."""
    if run.type != VERIFY_KEY or run.outcome != "succeeded":
        return
    complete_verification((run.context or {}).get("draft_id"), run.id)


def complete_verification(draft_id, run_id: int) -> bool:
    """Complete ``verify_access`` if ``run_id`` is the draft's verification and it
    succeeded. Idempotent: True only for the call that completed it."""
    draft = db.session.get(OnboardingDraft, draft_id) if isinstance(draft_id, int) else None
    run = db.session.get(OperationRun, run_id)
    if (draft is None or run is None or draft.checkpoint != "connect_provider" or draft.tenant_id is None
            or draft.verification_run_id != run_id or run.outcome != "succeeded"):
        return False
    user_id = run.initiator_user_id
    ids = (draft.id, draft.workspace_id, draft.tenant_id)
    now = utcnow()
    if not _transition(draft, "verify_access", user_id, now, OnboardingDraft.verification_run_id == run_id):
        db.session.rollback()
        return False
    user = db.session.get(User, user_id) if user_id else None
    _audit_transition(draft, "verify_access", Actor.human(user) if user else Actor.system("Onboarding"), ids[2])
    db.session.commit()
    _record(*ids, user_id, "verify_access", now)
    return True


def mark_ready(draft: OnboardingDraft, user) -> bool:
    """Complete ``ready_for_activation`` (the reviewed draft). True when this call did."""
    return _simple_step(draft, "ready_for_activation", user)


def activate(draft: OnboardingDraft, user) -> bool:
    """Complete ``activated``: the draft is closed and its tenant in service. True when
    this call did."""
    return _simple_step(draft, "activated", user, activated_at=True)


def _simple_step(draft: OnboardingDraft, checkpoint: str, user, activated_at: bool = False) -> bool:
    before = CHECKPOINTS[CHECKPOINTS.index(checkpoint) - 1]
    if draft.checkpoint != before or draft.tenant_id is None:
        return False
    ids = (draft.id, draft.workspace_id, draft.tenant_id)
    now = utcnow()
    extra = {"activated_at": now} if activated_at else {}
    if not _transition(draft, checkpoint, user.id, now, **extra):
        db.session.rollback()
        return False
    if activated_at and not db.session.execute(
            # The tenant enters service with the draft's last step, or neither happens.
            update(Tenant).where(Tenant.id == draft.tenant_id, Tenant.status == "onboarding")
            .values(status="active").execution_options(synchronize_session=False)).rowcount:
        db.session.rollback()
        return False
    _audit_transition(draft, checkpoint, Actor.human(user), ids[2])
    db.session.commit()
    _record(*ids, user.id, checkpoint, now)
    return True
