"""Four-eyes approval of runbook starts (issue #16): the stored preflight is the thing
approved.

Confirm on a scope that needs approval creates an ``ApprovalRequest`` instead of a run.
A second operator (``platform.runbooks.approve`` + the runbook's capability, never the
requester — break-glass changes nothing) approves it with the typed confirmation word;
the run then starts through the start seam *as the requester*, with the approver in the
run context. Controls are evaluated at that moment, the affected count must not have
drifted more than 10% from the stored figures, and a request expires after
``TENANTPILOT_APPROVAL_EXPIRY_MINUTES``.

Every transition is a conditional UPDATE (``WHERE status = 'pending'``), committed before
anything else happens, so two approvers at once give exactly one run. No Flask request
state is read here: pages, CLI and API pass ``Actor``s and a source.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from . import audit, controls, runbook_starts, seam
from .actors import Actor
from .extensions import db
from .models import ApprovalRequest, AuditLog, Notification, PlatformUser
from .timeutil import utcnow

APPROVE_CAPABILITY = "platform.runbooks.approve"
STATUSES = ("pending", "approved", "rejected", "expired", "cancelled")
SOURCES = ("system_ui", "cli", "api")
DECISION_REASON_MIN, DECISION_REASON_MAX = 5, 500
PAGE_SIZE = 50


class ApprovalRefused(Exception):
    """Why an approval action did nothing: a stable slug (API problem type), a message
    for people, the form field it belongs to (if any) and the HTTP status it maps to."""

    def __init__(self, slug: str, message: str, field: str | None = None, status: int = 409,
                 title: str | None = None):
        super().__init__(message)
        self.slug, self.message, self.field, self.status, self.title = slug, message, field, status, title


# --- rules ---------------------------------------------------------------------------


def required_scopes(config=None) -> set[str]:
    """Scope kinds the operator setting puts under approval for every runbook."""
    value = (config if config is not None else current_app.config).get("TENANTPILOT_APPROVAL_REQUIRED_SCOPES") or ""
    return {part.strip() for part in str(value).split(",") if part.strip()}


def approval_scopes(runbook, config=None) -> tuple[str, ...]:
    """The scopes of this runbook that need approval (its own plus the setting's), in
    the runbook's scope order: what the catalog and ``flask runbooks list`` show."""
    wanted = set(runbook.approval_scopes or ()) | required_scopes(config)
    return tuple(s for s in runbook.scopes if s in wanted)


def needs_approval(runbook, scope: dict) -> bool:
    return scope.get("kind") in approval_scopes(runbook)


def expiry() -> timedelta:
    return timedelta(minutes=current_app.config.get("TENANTPILOT_APPROVAL_EXPIRY_MINUTES", 60))


def is_overdue(req: ApprovalRequest, now=None) -> bool:
    return req.status == "pending" and (now or utcnow()) >= req.expires_at


def runbook_of(req: ApprovalRequest):
    return current_app.extensions["tenantpilot"].registry.runbooks.get(req.runbook_key)


def may_approve(req: ApprovalRequest, actor: Actor) -> bool:
    """Whether this actor may decide this request (not whether it is still pending)."""
    runbook = runbook_of(req)
    return (actor.kind == "platform" and actor.id != req.requester_id and runbook is not None
            and actor.can(APPROVE_CAPABILITY, runbook.capability))


def approvers(runbook, exclude_id: int | None) -> list[PlatformUser]:
    """Active platform users who may approve this runbook's requests (the requester
    excluded). Capabilities are a JSON list, so the filter runs in Python."""
    users = db.session.scalars(select(PlatformUser).where(PlatformUser.is_active.is_(True))).all()
    return [u for u in users if u.id != exclude_id and u.can(APPROVE_CAPABILITY, runbook.capability)]


# --- request -------------------------------------------------------------------------


def paused_now(runbook, scope: dict, actor: Actor, source: str):
    """A request for a paused runbook would only wait to be refused: answer it the way
    the seam answers a paused start (same words, same blocked audit) → StartResult or None."""
    from .runs import Scope

    state = current_app.extensions["tenantpilot"]
    op = state.registry.operation_types[runbook.key]
    decision = controls.evaluate(op.control_key, scope.get("workspace_id"))
    if not decision.paused:
        return None
    run_scope = Scope(scope["kind"], scope.get("workspace_id"), scope.get("tenant_id"))
    seam._audit_blocked(op, run_scope, actor, source, decision, {})
    title, body = seam.paused_message(seam._control_label(state, op), decision.reason)
    return seam.StartResult("blocked", decision=decision, message=body, label=op.label, extra={"title": title})


def request(runbook, event: AuditLog, actor: Actor, reason_code: str, reason_text: str,
            source: str) -> ApprovalRequest:
    """Store a pending request for the start ``event`` (the stored preflight) describes;
    the caller has already checked the confirmation (typed word, reason, drift)."""
    scope, result = event.meta["scope"], event.meta["result"]
    now = utcnow()
    req = ApprovalRequest(
        runbook_key=runbook.key, scope=scope, preflight_audit_id=event.id, preflight_result=result,
        reason_code=reason_code, reason_text=(reason_text or "")[:500], requester_id=actor.id, status="pending",
        created_at=now, expires_at=now + expiry(), source=source if source in SOURCES else "system_ui",
    )
    db.session.add(req)
    db.session.flush()
    title = f"Approval needed: {runbook.label} for {runbook_starts.scope_label(scope)}"
    body = (f"{actor.name} asks to start {runbook.label} ({result.get('affected_count', 0):,} items, "
            f"reason {reason_code}). Request #{req.id}.")
    for user in approvers(runbook, exclude_id=actor.id):
        db.session.add(Notification(platform_user_id=user.id, kind="platform.ops.approvals.requested",
                                    title=title[:200], body=body[:500], approval_request_id=req.id))
    _audit("requested", req, runbook, actor, f"Approval requested: {runbook.label} for "
           f"{runbook_starts.scope_label(scope)}", {"reason_code": reason_code, "reason_text": req.reason_text})
    _alert_approvers(req, runbook, title, body)
    return req


# --- decisions -----------------------------------------------------------------------


def get(request_id) -> ApprovalRequest:
    req = db.session.get(ApprovalRequest, request_id) if _valid_id(request_id) else None
    if req is None:
        raise ApprovalRefused("not-found", "Approval request not found.", status=404)
    return req


def approve(request_id, actor: Actor, confirmation: str, source: str):
    """Approve and start → (request, StartResult). Raises ApprovalRefused."""
    req = get(request_id)
    runbook = _check_decider(req, actor)
    _check_pending(req)
    if (confirmation or "").strip() != runbook.confirmation_word:
        raise ApprovalRefused("confirmation", f"Type {runbook.confirmation_word} exactly to confirm.",
                              field="confirmation", status=422)
    drift = runbook_starts.drift(runbook, req.scope, req.preflight_result)
    if drift is not None:
        raise ApprovalRefused("drift", drift + " The requester must run a new preflight and ask again.",
                              field="confirmation", status=409)
    # Claim: only one approver's UPDATE finds the row pending; committed before the start.
    if not _transition(req.id, "approved", actor):
        db.session.refresh(req)
        raise ApprovalRefused("already-decided", f"This request was already {req.status}.", status=409)
    requester = db.session.get(PlatformUser, req.requester_id)
    event = db.session.get(AuditLog, req.preflight_audit_id)
    context_extra = {"approval": {
        "request_id": req.id, "requester": {"id": requester.id, "name": requester.name},
        "approver": {"id": actor.id, "name": actor.name}, "approved_figures": req.preflight_result,
        "preflight_audit_id": req.preflight_audit_id}}
    outcome = runbook_starts.start(runbook, event, Actor.platform(requester), req.reason_code, req.reason_text,
                                   source, extra_context=context_extra)
    if outcome.status == "blocked":
        # Paused in between: the request waits again (the seam audited the block).
        _transition(req.id, "pending", None, expect="approved")
        db.session.refresh(req)
        raise ApprovalRefused("paused", outcome.message, status=409, title=outcome.extra.get("title"))
    if outcome.status == "scope_busy":
        # Another all-tenants run of this runbook is active: nothing started; ask again later.
        _transition(req.id, "pending", None, expect="approved")
        db.session.refresh(req)
        raise ApprovalRefused("scope-busy", outcome.message + " Approve again when it has finished.", status=409)
    if outcome.run is None:  # forbidden (requester lost the capability), enqueue failed, …
        _transition(req.id, "pending", None, expect="approved")
        db.session.refresh(req)
        raise ApprovalRefused("not-started", outcome.message or "The run could not be started.",
                              status=outcome.http_status if outcome.http_status >= 400 else 409)
    db.session.execute(update(ApprovalRequest).where(ApprovalRequest.id == req.id).values(run_id=outcome.run.id))
    db.session.add(Notification(platform_user_id=req.requester_id, kind="platform.ops.approvals.approved",
                                title=f"{runbook.label} approved by {actor.name}"[:200],
                                body=f"Request #{req.id} was approved; run #{outcome.run.id} started.",
                                run_id=outcome.run.id, approval_request_id=req.id))
    db.session.refresh(req)
    _audit("approved", req, runbook, actor, f"Approved {runbook.label} for {runbook_starts.scope_label(req.scope)}",
           {"run_id": outcome.run.id, "requester_id": req.requester_id, "source": source})
    return req, outcome


def reject(request_id, actor: Actor, reason: str, source: str) -> ApprovalRequest:
    req = get(request_id)
    if actor.id == req.requester_id:
        raise ApprovalRefused("own-request", "You cannot reject your own request; cancel it instead.", status=403)
    runbook = _check_decider(req, actor)
    _check_pending(req)
    reason = (reason or "").strip()
    if not DECISION_REASON_MIN <= len(reason) <= DECISION_REASON_MAX or "\x00" in reason:
        raise ApprovalRefused("reason", "Give a reason of 5 to 500 characters.", field="reason", status=422)
    if not _transition(req.id, "rejected", actor, reason=reason):
        db.session.refresh(req)
        raise ApprovalRefused("already-decided", f"This request was already {req.status}.", status=409)
    db.session.refresh(req)
    _notify_requester(req, f"{runbook.label} rejected by {actor.name}", f"Request #{req.id} was rejected: {reason}")
    _audit("rejected", req, runbook, actor, f"Rejected {runbook.label} for {runbook_starts.scope_label(req.scope)}",
           {"decision_reason": reason, "source": source})
    return req


def cancel(request_id, actor: Actor, source: str) -> ApprovalRequest:
    """The requester withdraws a pending request."""
    req = get(request_id)
    if actor.id != req.requester_id:
        raise ApprovalRefused("forbidden", "Only the requester can cancel a request.", status=403)
    runbook = runbook_of(req)
    _check_pending(req)
    if not _transition(req.id, "cancelled", actor):
        db.session.refresh(req)
        raise ApprovalRefused("already-decided", f"This request was already {req.status}.", status=409)
    db.session.refresh(req)
    _audit("cancelled", req, runbook, actor, f"Cancelled approval request #{req.id}", {"source": source})
    return req


STALL = timedelta(minutes=2)


def settle_stalled(now=None) -> int:
    """Scheduled: an approval whose process died between its claim (committed first, so
    two approvers give one run) and the end of the start is settled, not lost. If the
    seam made the run, the request gets its run id and the approved audit row it missed;
    if not, it waits again (audited ``reopened``) for an approver. Returns how many."""
    from .models import OperationRun

    now = now or utcnow()
    stalled = db.session.scalars(select(ApprovalRequest).where(
        ApprovalRequest.status == "approved", ApprovalRequest.run_id.is_(None),
        ApprovalRequest.decided_at <= now - STALL).order_by(ApprovalRequest.id)).all()
    done = 0
    for req in stalled:
        runbook = runbook_of(req)
        runs = db.session.scalars(select(OperationRun).where(
            OperationRun.type == req.runbook_key, OperationRun.created_at >= req.decided_at - timedelta(seconds=1))).all()
        run = next((r for r in runs if ((r.context or {}).get("approval") or {}).get("request_id") == req.id), None)
        if run is not None:
            settled = db.session.execute(update(ApprovalRequest).where(
                ApprovalRequest.id == req.id, ApprovalRequest.run_id.is_(None)).values(run_id=run.id)).rowcount
            db.session.commit()
            if settled:
                db.session.refresh(req)
                approver = db.session.get(PlatformUser, req.decided_by_id) if req.decided_by_id else None
                _audit("approved", req, runbook, Actor.platform(approver) if approver else Actor.system(),
                       f"Approved request #{req.id} settled after an interrupted start",
                       {"run_id": run.id, "settled": True})
                done += 1
        elif _transition(req.id, "pending", None, expect="approved"):
            db.session.refresh(req)
            _audit("reopened", req, runbook, Actor.system(), f"Approval request #{req.id} waits again: its start "
                   "was interrupted before a run was made", {})
            done += 1
    return done


def expire_due() -> int:
    """Scheduled job: pending requests past their expiry become expired (audited, the
    requester told). Returns how many."""
    now = utcnow()
    ids = db.session.scalars(select(ApprovalRequest.id).where(
        ApprovalRequest.status == "pending", ApprovalRequest.expires_at <= now).order_by(ApprovalRequest.id)).all()
    done = 0
    for request_id in ids:
        done += _expire(db.session.get(ApprovalRequest, request_id))
    return done


# --- lists ---------------------------------------------------------------------------


def pending_count() -> int:
    return db.session.scalar(select(func.count()).select_from(ApprovalRequest)
                             .where(ApprovalRequest.status == "pending")) or 0


def search(status: str | None = None, before_id: int | None = None, limit: int = PAGE_SIZE):
    """Newest first, keyset-paged by id → (rows, more)."""
    q = select(ApprovalRequest)
    if status in STATUSES:
        q = q.where(ApprovalRequest.status == status)
    if before_id:
        q = q.where(ApprovalRequest.id < before_id)
    rows = db.session.scalars(q.order_by(ApprovalRequest.id.desc()).limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit


def recount(req: ApprovalRequest) -> dict | None:
    """A fresh, read-only preflight of the request's scope (None: runbook gone)."""
    runbook = runbook_of(req)
    return runbook_starts.run_preflight(runbook, dict(req.scope)) if runbook else None


def drift_percent(before: dict, now: dict) -> float:
    was = before.get("affected_count", 0) or 0
    return abs((now.get("affected_count", 0) or 0) - was) * 100.0 / max(was, 1)


# --- internals -----------------------------------------------------------------------


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 31


def _check_decider(req: ApprovalRequest, actor: Actor):
    if actor.kind == "platform" and actor.id == req.requester_id:
        raise ApprovalRefused("own-request", "You cannot approve your own request.", status=403)
    runbook = runbook_of(req)
    if not may_approve(req, actor):
        raise ApprovalRefused("forbidden", "You do not have permission to decide this request.", status=403)
    return runbook


def _check_pending(req: ApprovalRequest) -> None:
    if is_overdue(req):
        _expire(req)
        raise ApprovalRefused("expired", "This request expired; the requester must ask again.", status=409)
    if req.status != "pending":
        raise ApprovalRefused("already-decided", f"This request was already {req.status}.", status=409)


def _expire(req: ApprovalRequest) -> int:
    if not _transition(req.id, "expired", None, guard_time=True):
        return 0
    db.session.refresh(req)
    runbook = runbook_of(req)
    label = runbook.label if runbook else req.runbook_key
    _notify_requester(req, f"{label} approval request expired",
                      f"Request #{req.id} was not decided in time; run a new preflight to ask again.")
    _audit("expired", req, runbook, Actor.system(), f"Approval request #{req.id} expired", {})
    return 1


def _transition(request_id: int, to: str, actor: Actor | None, reason: str | None = None,
                expect: str = "pending", guard_time: bool = False) -> bool:
    """Conditional UPDATE from ``expect`` to ``to``, committed → whether this call won."""
    now = utcnow()
    q = update(ApprovalRequest).where(ApprovalRequest.id == request_id, ApprovalRequest.status == expect)
    if guard_time:
        q = q.where(ApprovalRequest.expires_at <= now)
    elif to != "pending":
        q = q.where(ApprovalRequest.expires_at > now)  # an overdue request can only expire
    values = {"status": to}
    if to == "pending":
        values.update(decided_at=None, decided_by_id=None)
    else:
        values.update(decided_at=now, decided_by_id=actor.id if actor and actor.kind == "platform" else None)
        if reason is not None:
            values["decision_reason"] = reason
    won = db.session.execute(q.values(**values).execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    return won


def _notify_requester(req: ApprovalRequest, title: str, body: str) -> None:
    db.session.add(Notification(platform_user_id=req.requester_id, kind=f"platform.ops.approvals.{req.status}",
                                title=title[:200], body=body[:500], approval_request_id=req.id))


def _audit(step: str, req: ApprovalRequest, runbook, actor: Actor, summary: str, extra: dict) -> None:
    scope = req.scope or {}
    audit.record(
        f"platform.ops.approvals.{step}", actor=actor, workspace_id=scope.get("workspace_id"),
        tenant_id=scope.get("tenant_id"),
        target=("approval_request", req.id, runbook.label if runbook else req.runbook_key), summary=summary,
        metadata={"runbook": req.runbook_key, "scope": scope, "preflight_audit_id": req.preflight_audit_id,
                  "request_id": req.id, "requester_id": req.requester_id, **extra},
    )


def _alert_approvers(req: ApprovalRequest, runbook, title: str, body: str) -> None:
    """The configured alert channels (e-mail, webhook) hear of a waiting request too."""
    from . import alerts

    alerts.create_message_deliveries("platform.ops.approvals.requested", {
        "event": "platform.ops.approvals.requested", "request_id": req.id, "runbook": runbook.key,
        "label": runbook.label, "scope": (req.scope or {}).get("kind"),
        "affected_count": (req.preflight_result or {}).get("affected_count", 0),
        "title": title, "path": f"/system/ops/approvals/{req.id}"})
