"""Backups and restores: capture, preview, safety checks, start and execution.

Everything that talks to a vendor goes through ``tenantpilot.sdk.provider_client`` (the
provider boundary); everything that starts work goes through the start seam, so
"Execute restore" meets the ``restore.execute`` control before any row, job or provider
call exists.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import abort
from flask_babel import ngettext
from sqlalchemy import bindparam, func, insert, select, update

from tenantpilot.api import ProviderError, TenantJob, TenantJobError
from tenantpilot.sdk import (Actor, OperationRun, Scope, Tenant, db, evaluate_control, provider_client, provider_of,
                             record_audit, safe_message, start_operation, utcnow)

from .models import BackupItem, BackupSet, Policy, RestoreRun, RestoreRunItem

log = logging.getLogger("tenantpilot.restore")
CAPTURE_KEY = "restore.backup_capture"
CAPTURE_LABEL = "Capture backup"
EXECUTE_KEY = "restore.execute"
EXECUTE_LABEL = "Execute restore"
EXECUTE_CAPABILITIES = ("tenant.manage", "restore.execute")
STALE_BACKUP_DAYS = 30
VALUE_LIMIT = 160  # characters of a value shown in a diff cell


# --- capture ---------------------------------------------------------------------------

def _client(tenant_id: int):
    try:
        return provider_client(tenant_id)
    except ProviderError as exc:
        raise TenantJobError(exc.reason_code, exc.message) from None


def snapshot(tenant_id: int, *, name: str, run_id: int | None = None, created_by: str | None = None) -> BackupSet:
    """Read every policy of every type the tenant's provider supports into a new backup
    set (flushed, not committed). Upserts the policy inventory on the way."""
    provider = provider_of(tenant_id)
    if provider is None:
        raise TenantJobError("not_connected", "This tenant has no provider connection.")
    client = _client(tenant_id)
    try:
        records = [r for policy_type in provider.policy_types for r in client.list_policies(policy_type)]
    except ProviderError as exc:
        raise TenantJobError(exc.reason_code, exc.message) from None
    now = utcnow()
    known = {(p.policy_type, p.external_id): p for p in db.session.scalars(
        select(Policy).where(Policy.tenant_id == tenant_id))}
    for r in records:
        policy = known.get((r.policy_type, r.policy_id))
        if policy is None:
            policy = Policy(tenant_id=tenant_id, policy_type=r.policy_type, external_id=r.policy_id, name=r.name[:200])
            db.session.add(policy)
            known[(r.policy_type, r.policy_id)] = policy
        policy.name, policy.last_seen_at = r.name[:200], now
    backup = BackupSet(tenant_id=tenant_id, name=name[:200], item_count=len(records), operation_run_id=run_id,
                       created_by_name=created_by, created_at=now)
    db.session.add(backup)
    db.session.flush()
    if records:
        db.session.execute(insert(BackupItem), [
            {"backup_set_id": backup.id, "tenant_id": tenant_id, "policy_id": known[(r.policy_type, r.policy_id)].id,
             "policy_type": r.policy_type, "external_id": r.policy_id, "name": r.name[:200], "payload": dict(r.payload)}
            for r in records])
    return backup


def capture_tenant(job: TenantJob) -> dict:
    """Executor of "Capture backup": one backup set per run, even if the job runs twice."""
    existing = db.session.scalars(select(BackupSet).where(BackupSet.operation_run_id == job.run_id)).first()
    if existing is not None:
        return {"items": existing.item_count}
    initiator = (job.context.get("initiator") or {}).get("name")
    backup = snapshot(job.tenant_id, name=f"Backup {utcnow():%Y-%m-%d %H:%M} UTC", run_id=job.run_id,
                      created_by=initiator)
    return {"items": backup.item_count}


def start_capture(tenant_id: int, actor: Actor):
    return start_operation(CAPTURE_KEY, scope=Scope("single_tenant", tenant_id=tenant_id), actor=actor, source="tenant_ui")


# --- preview ---------------------------------------------------------------------------

def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and not value and not prefix:
        return {}  # a policy that does not exist yet: every setting of the backup is new
    if isinstance(value, dict) and value:
        out = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "(whole policy)": value}


def _show(value) -> str | None:
    if value is _MISSING:
        return None
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


_MISSING = object()


def diff(current: dict | None, backup: dict) -> list[dict]:
    """Setting-level differences, as rows {path, current, backup} (None: absent)."""
    now, then = _flatten(current or {}), _flatten(backup)
    rows = []
    for path in sorted(set(now) | set(then)):
        a, b = now.get(path, _MISSING), then.get(path, _MISSING)
        if a != b:
            rows.append({"path": path, "current": _show(a), "backup": _show(b)})
    return rows


@dataclass
class PreviewRow:
    item: BackupItem
    action: str  # create | update | unchanged | unknown
    changes: list
    error: str | None = None


def preview(tenant_id: int, items: list[BackupItem]) -> list[PreviewRow]:
    """Each item's backup payload against the provider's current state (reads only)."""
    try:
        client = provider_client(tenant_id)
    except ProviderError as exc:
        return [PreviewRow(i, "unknown", [], exc.message) for i in items]
    rows = []
    for item in items:
        try:
            current = client.get_policy(item.policy_type, item.external_id)
        except ProviderError as exc:
            rows.append(PreviewRow(item, "unknown", [], safe_message(exc.message)))
            continue
        if current is None:
            rows.append(PreviewRow(item, "create", diff(None, item.payload)))
        elif dict(current.payload) == item.payload:
            rows.append(PreviewRow(item, "unchanged", []))
        else:
            rows.append(PreviewRow(item, "update", diff(dict(current.payload), item.payload)))
    db.session.commit()  # the provider's own bookkeeping (e.g. the simulated call log)
    return rows


# --- safety checks ---------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    key: str
    label: str
    status: str  # ok | warn | fail
    message: str


def safety_checks(tenant: Tenant, backup: BackupSet, items: list[BackupItem]) -> list[Check]:
    checks = [Check("tenant_active", "Tenant is active", "ok" if tenant.status == "active" else "fail",
                    "Active." if tenant.status == "active" else "Archived tenants cannot be restored.")]
    checks.append(Check("items_selected", "Items selected", "ok" if items else "fail",
                        ngettext("%(selected)s of %(num)d item selected.", "%(selected)s of %(num)d items selected.",
                                 backup.item_count, selected=len(items)) if items else "Choose at least one item."))
    provider = provider_of(tenant.id)
    if provider is None:
        checks.append(Check("provider_connection", "Provider connection", "fail",
                            "This tenant has no provider connection. Set one up on the Provider tab."))
    else:
        try:
            provider_client(tenant.id).granted_permissions()
            db.session.commit()
            checks.append(Check("provider_connection", "Provider connection", "ok", f"{provider.label} answered."))
        except ProviderError as exc:
            db.session.rollback()
            checks.append(Check("provider_connection", "Provider connection", "fail",
                                f"{provider.label} could not be reached: {safe_message(exc.message)}"))
        unsupported = sorted({i.policy_type for i in items} - set(provider.policy_types))
        checks.append(Check("policy_types", "Policy types supported",
                            "fail" if unsupported else "ok",
                            f"{provider.label} cannot restore: {', '.join(unsupported)}." if unsupported
                            else "Every selected policy type can be restored."))
    age = utcnow() - backup.created_at
    checks.append(Check("backup_age", "Backup age", "warn" if age > timedelta(days=STALE_BACKUP_DAYS) else "ok",
                        ngettext("Taken %(num)d day ago.", "Taken %(num)d days ago.", age.days)
                        + (" Settings changed since then will be overwritten."
                                                           if age > timedelta(days=STALE_BACKUP_DAYS) else "")))
    active = db.session.scalar(
        select(func.count()).select_from(RestoreRun).join(OperationRun, OperationRun.id == RestoreRun.operation_run_id)
        .where(RestoreRun.tenant_id == tenant.id, OperationRun.status.in_(("queued", "running"))))
    checks.append(Check("no_active_restore", "No restore in progress", "warn" if active else "ok",
                        ngettext("%(num)d restore of this tenant is still running.",
                                 "%(num)d restores of this tenant are still running.", active)
                        if active else "None running."))
    decision = evaluate_control(EXECUTE_KEY, tenant.workspace_id)
    checks.append(Check("restore_control", "Restore execution enabled", "warn" if decision.paused else "ok",
                        _sentence("Restore execution is currently paused. " + (decision.reason or ""))
                        + " You can still record a dry run."
                        if decision.paused else "Enabled."))
    return checks


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def blocking(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


# --- selection (the wizard's and the API's) ----------------------------------------------

def backup_or_404(tenant_id: int, backup_set_id) -> BackupSet:
    backup = db.session.get(BackupSet, backup_set_id) if isinstance(backup_set_id, int) else None
    if backup is None or backup.tenant_id != tenant_id:
        abort(404)
    return backup


def selected_items(backup: BackupSet, scope: str, item_ids: list[int]) -> list[BackupItem]:
    q = select(BackupItem).where(BackupItem.backup_set_id == backup.id).order_by(BackupItem.id)
    if scope == "all":
        return list(db.session.scalars(q))
    wanted = set(item_ids)
    items = list(db.session.scalars(q.where(BackupItem.id.in_(wanted))))
    if len(items) != len(wanted):
        abort(404)  # an item of another backup set or tenant: do not say which exists
    return items


# --- dry run and execute ---------------------------------------------------------------

def _items_digest(item_ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(item_ids))).encode()).hexdigest()[:32]


def record_dry_run(tenant: Tenant, backup: BackupSet, items: list[BackupItem], scope: str, user) -> RestoreRun:
    """The preview, stored: nothing is applied and no operation run exists."""
    rows = preview(tenant.id, items)
    rr = RestoreRun(tenant_id=tenant.id, backup_set_id=backup.id, kind="dry_run", scope=scope, item_count=len(items),
                    requested_by_user_id=user.id, requested_by_name=user.name)
    db.session.add(rr)
    db.session.flush()
    db.session.execute(insert(RestoreRunItem), [
        {"restore_run_id": rr.id, "backup_item_id": r.item.id, "policy_type": r.item.policy_type, "name": r.item.name,
         "preview_action": r.action, "preview_changes": r.changes, "result": None,
         "message": r.error} for r in rows])
    record_audit("restore.dry_run_recorded", actor=Actor.human(user), workspace_id=tenant.workspace_id,
                 tenant_id=tenant.id, target=("restore_run", rr.id, f"Dry run #{rr.id}"),
                 summary=ngettext("Restore dry run of backup set #%(backup)s (%(num)d item)",
                                  "Restore dry run of backup set #%(backup)s (%(num)d items)", len(items), backup=backup.id),
                 metadata={"restore_run_id": rr.id, "backup_set_id": backup.id, "selected_item_count": len(items),
                           "would_change": sum(r.action in ("create", "update") for r in rows)},
                 commit=False)
    db.session.commit()
    return rr


def start_restore(tenant: Tenant, backup: BackupSet, items: list[BackupItem], scope: str, user,
                  rerun_of: RestoreRun | None = None, source: str = "tenant_ui"):
    """Execute restore through the start seam. The control is evaluated first; when it
    blocks, nothing below runs: no RestoreRun, no OperationRun, no job, no provider call.
    Returns (StartResult, RestoreRun | None)."""
    actor = Actor.human(user)
    item_ids = [i.id for i in items]
    created: list[RestoreRun] = []

    def attach(run: OperationRun) -> None:
        rr = RestoreRun(tenant_id=tenant.id, backup_set_id=backup.id, operation_run_id=run.id, kind="execute",
                        scope=scope, item_count=len(items), requested_by_user_id=user.id, requested_by_name=user.name,
                        rerun_of_id=rerun_of.id if rerun_of else None)
        db.session.add(rr)
        db.session.flush()
        db.session.execute(insert(RestoreRunItem), [
            {"restore_run_id": rr.id, "backup_item_id": i.id, "policy_type": i.policy_type, "name": i.name,
             "preview_action": "unknown", "preview_changes": [], "result": "pending"} for i in items])
        record_audit("restore.execution_started", actor=actor, workspace_id=tenant.workspace_id, tenant_id=tenant.id,
                     target=("restore_run", rr.id, f"Restore #{rr.id}"),
                     summary=ngettext("Restore of backup set #%(backup)s started (%(num)d item)",
                                      "Restore of backup set #%(backup)s started (%(num)d items)", len(items),
                                      backup=backup.id),
                     metadata={"restore_run_id": rr.id, "operation_run_id": run.id, "backup_set_id": backup.id,
                               "selected_item_count": len(items), "rerun_of": rerun_of.id if rerun_of else None},
                     commit=False)
        created.append(rr)

    selection = {"backup_set_id": backup.id, "selected_item_count": len(items)}
    result = start_operation(
        EXECUTE_KEY, scope=Scope("single_tenant", tenant_id=tenant.id), actor=actor, source=source,
        identity_inputs={"backup_set_id": backup.id, "items": _items_digest(item_ids)},
        context={"backup_set_id": backup.id, "selected_item_count": len(items), "restore_scope": scope,
                 "rerun_of": rerun_of.id if rerun_of else None, "blocked_metadata": selection},
        attach=attach,
    )
    rr = created[0] if created else None
    if rr is None and result.run is not None:  # deduped: the restore already queued
        rr = db.session.scalars(select(RestoreRun).where(RestoreRun.operation_run_id == result.run.id)).first()
    return result, rr


# Results are written in small batches: every FLUSH_ITEMS items or FLUSH_SECONDS, so the
# detail page's progress moves while a commit per item does not dominate the run.
FLUSH_ITEMS = 50
FLUSH_SECONDS = 0.25


def execute_tenant(job: TenantJob) -> dict:
    """Executor of "Execute restore": apply each pending item through the tenant's
    provider and record its result. Items already settled (a re-run job after a crash)
    are not applied again. A provider failure fails that item only."""
    rr_id = db.session.scalar(select(RestoreRun.id).where(RestoreRun.operation_run_id == job.run_id))
    if rr_id is None:
        raise TenantJobError("restore_run_missing", "The restore run of this operation was not found.")
    pending = db.session.execute(
        select(RestoreRunItem.id, BackupItem.policy_type, BackupItem.external_id, BackupItem.payload)
        .join(BackupItem, BackupItem.id == RestoreRunItem.backup_item_id)
        .where(RestoreRunItem.restore_run_id == rr_id, RestoreRunItem.result == "pending")
        .order_by(RestoreRunItem.id)).all()
    if pending:
        try:
            client = provider_client(job.tenant_id)
        except ProviderError as exc:
            _write_results([_result(row[0], "failed", exc.reason_code, exc.message) for row in pending])
            db.session.commit()
            raise TenantJobError(exc.reason_code, exc.message) from None
        batch, last = [], time.monotonic()
        for item_id, policy_type, external_id, payload in pending:
            batch.append(_apply(client, item_id, policy_type, external_id, payload))
            if len(batch) >= FLUSH_ITEMS or time.monotonic() - last >= FLUSH_SECONDS:
                _write_results(batch)
                db.session.commit()  # what was applied so far is recorded, whatever happens next
                batch, last = [], time.monotonic()
        _write_results(batch)
        db.session.commit()
    counts = dict(db.session.execute(
        select(RestoreRunItem.result, func.count()).where(RestoreRunItem.restore_run_id == rr_id)
        .group_by(RestoreRunItem.result)).all())
    summary = {"items": sum(counts.values()), "applied": counts.get("applied", 0),
               "unchanged": counts.get("unchanged", 0), "items_failed": counts.get("failed", 0)}
    if summary["items"] and summary["items_failed"] == summary["items"]:
        raise TenantJobError("all_items_failed", ngettext("The item could not be restored.",
                                                          "None of the %(num)d items could be restored.", summary["items"]))
    return summary


def _apply(client, item_id: int, policy_type: str, external_id: str, payload: dict) -> dict:
    """Apply one item; returns its result row (preview of what it changed included)."""
    action, changes = "unknown", []
    try:
        current = client.get_policy(policy_type, external_id)
        action = "create" if current is None else "unchanged" if dict(current.payload) == payload else "update"
        changes = [] if action == "unchanged" else diff(dict(current.payload) if current else None, payload)
        with db.session.begin_nested():  # a failed apply leaves no half-written provider state
            outcome = client.apply_policy(policy_type, external_id, payload)
    except ProviderError as exc:
        return _result(item_id, "failed", exc.reason_code, exc.message, action, changes)
    except Exception as exc:  # a broken provider plugin fails the item, not the run
        log.exception("restore item %s failed", item_id)
        return _result(item_id, "failed", "unexpected_error", f"Unexpected error ({type(exc).__name__}).", action,
                       changes)
    return _result(item_id, "unchanged" if outcome == "unchanged" else "applied", None, None, action, changes)


def _result(item_id, result, reason=None, message=None, action="unknown", changes=()) -> dict:
    return {"b_id": item_id, "result": result, "reason_code": reason,
            "message": safe_message(message, 300) if message else None, "preview_action": action,
            "preview_changes": list(changes), "finished_at": utcnow()}


_WRITE_RESULT = (
    update(RestoreRunItem).where(RestoreRunItem.id == bindparam("b_id"))
    .values(result=bindparam("result"), reason_code=bindparam("reason_code"), message=bindparam("message"),
            preview_action=bindparam("preview_action"), preview_changes=bindparam("preview_changes"),
            finished_at=bindparam("finished_at"))
)


def _write_results(rows: list[dict]) -> None:
    if rows:
        db.session.connection().execute(_WRITE_RESULT, rows)


def outcome_of(rr: RestoreRun) -> tuple[str, str]:
    """(status label, badge) of a restore run for lists and the detail page."""
    if rr.kind == "dry_run":
        return "Dry run", "neutral"
    run = rr.operation_run
    if run is None:
        return "Unknown", "neutral"
    if run.status != "completed":
        return run.status.capitalize(), "info"
    return run.outcome.replace("_", " ").capitalize(), {"succeeded": "ok", "partially_succeeded": "warn"}.get(
        run.outcome, "bad")
