"""Stored reports (SPEC 5): two report types, their operation types and executor.

"Generate permission posture report" and "Generate Entra admin roles report" start an
operation run through the start seam. Its executor asks the tenant's provider
(``tenantpilot.sdk.provider_client``) for data, builds a summary (counts and names of
permissions / roles; never principals) and stores a ``StoredReport`` unless the data's
fingerprint equals the tenant's previous report of that type ("unchanged").

The permission posture report also keeps ``permission`` findings in step with what is
missing, when the findings plugin is part of the app.

Telemetry (SPEC 6): a report stored by a run that a person started records
``product.stored_report.created`` once, after the report row committed. System-initiated
runs, unchanged reports and failed runs record nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import insert, select, update

from tenantpilot.api import ProviderClient, ProviderError, TenantJob, TenantJobError
from tenantpilot.sdk import Actor, OperationRun, Scope, db, provider_client, record_event, start_operation, utcnow

from .models import StoredReport

log = logging.getLogger("tenantpilot.reports")
EVENT = "product.stored_report.created"
CAPABILITY = "reports.generate"
SUMMARY_KEYS = ("stored", "unchanged", "findings_created", "findings_resolved")
SUMMARY_LABELS = {"stored": "Reports stored", "unchanged": "Reports unchanged (not stored again)",
                  "findings_created": "Findings created", "findings_resolved": "Findings resolved"}
# Bumped when a builder's canonical data changes shape, so the next report is stored
# even if the tenant did not change.
FINGERPRINT_VERSION = 1

# The application permissions TenantPilot's features need in a tenant (Microsoft Graph
# application permission names), each with the feature that needs it.
REQUIRED_PERMISSIONS: dict[str, str] = {
    "DeviceManagementConfiguration.ReadWrite.All":
        "Backups and restores of device configuration and compliance policies",
    "DeviceManagementManagedDevices.Read.All": "Device compliance findings",
    "Policy.Read.All": "Backups and drift findings of Conditional Access policies",
    "Policy.ReadWrite.ConditionalAccess": "Restores of Conditional Access policies",
    "RoleManagement.Read.Directory": "The Entra admin roles report",
}
# Roles that can take over the tenant: the roles report counts their assignments apart.
PRIVILEGED_ROLES = ("Global Administrator", "Privileged Role Administrator", "Privileged Authentication Administrator")
FINDING_PREFIX = "permission:missing:"
ROLE_NAME_LIMIT = 120


# --- building reports ------------------------------------------------------------------

def _permission_posture(client: ProviderClient) -> tuple[dict, Any, int]:
    """(summary, canonical data, items read) from the permissions granted to our app."""
    granted = sorted({str(p) for p in client.granted_permissions()})
    required = sorted(REQUIRED_PERMISSIONS)
    missing = [p for p in required if p not in granted]
    summary = {
        "required": required,
        "required_count": len(required),
        "granted_count": len(required) - len(missing),
        "missing_count": len(missing),
        "missing": missing,
        "other_granted_count": len(set(granted) - set(required)),
    }
    return summary, {"granted": granted, "required": required}, len(granted)


def _entra_admin_roles(client: ProviderClient) -> tuple[dict, Any, int]:
    """(summary, canonical data, items read) from the directory role assignments. The
    summary counts per role and principal type; principal ids go into the fingerprint
    only (a role handed to someone else is a change), never into the summary."""
    assignments = client.directory_role_assignments()
    roles = Counter(str(a.role)[:ROLE_NAME_LIMIT] or "(unnamed role)" for a in assignments)
    kinds = Counter(str(a.principal_type or "unknown")[:40] for a in assignments)
    summary = {
        "assignment_count": len(assignments),
        "role_count": len(roles),
        # Most assigned first; ties by name, so the stored order is stable.
        "roles": dict(sorted(roles.items(), key=lambda kv: (-kv[1], kv[0]))),
        "principal_types": dict(sorted(kinds.items())),
        "privileged_assignment_count": sum(n for role, n in roles.items() if role in PRIVILEGED_ROLES),
    }
    canonical = sorted([str(a.role), str(a.principal_id), str(a.principal_type)] for a in assignments)
    return summary, canonical, len(assignments)


@dataclass(frozen=True)
class ReportType:
    key: str  # stored as StoredReport.report_type and the telemetry metadata value
    operation_type: str
    label: str
    action_label: str  # the button, and the operation type's label
    description: str
    build: Callable[[ProviderClient], tuple[dict, Any, int]]


REPORT_TYPES: dict[str, ReportType] = {
    "permission_posture": ReportType(
        "permission_posture", "report.permission_posture", "Permission posture",
        "Generate permission posture report",
        "The permissions TenantPilot holds in this tenant against the ones its features need; "
        "a missing permission also opens a finding.",
        _permission_posture),
    "entra_admin_roles": ReportType(
        "entra_admin_roles", "report.entra_admin_roles", "Entra admin roles",
        "Generate Entra admin roles report",
        "How many directory role assignments each admin role has, privileged roles apart.",
        _entra_admin_roles),
}
BY_OPERATION_TYPE = {t.operation_type: t for t in REPORT_TYPES.values()}


def fingerprint(report_type: str, canonical: Any) -> str:
    """sha256 of the canonical data (sorted keys, no whitespace), with the report type
    and builder version, so equal data always gives the same hex digest."""
    text = json.dumps({"type": report_type, "v": FINGERPRINT_VERSION, "data": canonical},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def latest_report(tenant_id: int, report_type: str, before_id: int | None = None) -> StoredReport | None:
    """The tenant's newest report of a type (older than ``before_id`` when given)."""
    q = select(StoredReport).where(StoredReport.tenant_id == tenant_id, StoredReport.report_type == report_type)
    if before_id is not None:
        q = q.where(StoredReport.id < before_id)
    return db.session.scalars(q.order_by(StoredReport.id.desc()).limit(1)).first()


def headline(report: StoredReport) -> str:
    """One line for lists: what the report says, in counts."""
    s = report.summary or {}
    if report.report_type == "permission_posture":
        text = ngettext("%(granted)s of %(num)d required permission granted",
                        "%(granted)s of %(num)d required permissions granted", s.get("required_count", 0),
                        granted=s.get("granted_count", 0))
        missing = s.get("missing_count", 0)
        return text + (f" · {missing} missing" if missing else " · none missing")
    if report.report_type == "entra_admin_roles":
        n, roles = s.get("assignment_count", 0), s.get("role_count", 0)
        return (ngettext("%(num)d role assignment", "%(num)d role assignments", n) + " "
                + ngettext("across %(num)d role", "across %(num)d roles", roles))
    return report.report_type


# --- findings for missing permissions --------------------------------------------------

def findings_api():
    """(Finding, OPEN_STATUSES, due_date) when the findings plugin is part of this app
    (only then does its table exist), else None. Imported lazily: reports work without it."""
    try:
        from tenantpilot_findings import plugin as findings_plugin
        from tenantpilot_findings.models import OPEN_STATUSES, Finding
    except ImportError:
        return None
    if not current_app.extensions["tenantpilot"].pm.is_registered(findings_plugin):
        return None
    try:
        from tenantpilot_findings.sla import due_date
    except ImportError:  # an older findings plugin without SLA: no due date
        due_date = None
    return Finding, OPEN_STATUSES, due_date


def _due(due_date, severity: str, first_seen):
    if due_date is None:
        return None
    try:
        return due_date(severity, first_seen)
    except ValueError:  # FINDINGS_SLA_DAYS misconfigured: the backfill fills it once fixed
        log.warning("findings SLA misconfigured; permission finding created without due date")
        return None


def _finding_title(permission: str) -> str:
    feature = REQUIRED_PERMISSIONS.get(permission, "TenantPilot")
    return f"Missing permission {permission} (needed for: {feature})"[:300]


def sync_permission_findings(tenant_id: int, missing: list[str]) -> dict[str, int] | None:
    """Keep one open ``permission`` finding per missing permission (fingerprint
    ``permission:missing:<name>``): create the absent ones with the lifecycle fields the
    findings backfill expects, mark the still-missing ones seen again, and resolve open
    ones whose permission is granted now. Idempotent; no commit. None without the
    findings plugin."""
    api = findings_api()
    if api is None:
        return None
    Finding, open_statuses, due_date = api
    now = utcnow()
    wanted = {FINDING_PREFIX + name: name for name in missing}
    open_rows = db.session.execute(
        select(Finding.id, Finding.fingerprint).where(
            Finding.tenant_id == tenant_id, Finding.type == "permission",
            Finding.fingerprint.like(FINDING_PREFIX + "%"), Finding.status.in_(open_statuses))).all()
    open_fps = {fp for _, fp in open_rows}
    new = [fp for fp in sorted(wanted) if fp not in open_fps]
    if new:
        db.session.execute(insert(Finding), [
            {"tenant_id": tenant_id, "type": "permission", "severity": "high", "status": "new",
             "title": _finding_title(wanted[fp]),
             "fingerprint": fp, "created_at": now, "first_seen_at": now, "last_seen_at": now,
             "due_at": _due(due_date, "high", now)} for fp in new])
    seen = [i for i, fp in open_rows if fp in wanted]
    if seen:
        db.session.execute(update(Finding).where(Finding.id.in_(seen)).values(last_seen_at=now)
                           .execution_options(synchronize_session=False))
    granted = [i for i, fp in open_rows if fp not in wanted]
    if granted:
        db.session.execute(update(Finding).where(Finding.id.in_(granted))
                           .values(status="resolved", resolved_at=now, resolution="permission_granted")
                           .execution_options(synchronize_session=False))
    return {"findings_created": len(new), "findings_resolved": len(granted)}


# --- the executor ----------------------------------------------------------------------

def execute_report(job: TenantJob) -> dict:
    """Executor of both report operation types: read the provider, store the report
    unless unchanged, record telemetry for a person's run. A provider error fails the
    tenant with its reason code (nothing stored, nothing recorded)."""
    spec = BY_OPERATION_TYPE[job.operation_type]
    existing = db.session.scalars(select(StoredReport).where(StoredReport.operation_run_id == job.run_id)).first()
    if existing is not None:
        # A re-executed job (its worker died after the ledger committed this tenant).
        return {"stored": 1}
    try:
        client = provider_client(job.tenant_id)
        summary, canonical, items = spec.build(client)
    except ProviderError as exc:
        raise TenantJobError(exc.reason_code, exc.message) from None
    counts = {"items": items}
    if spec.key == "permission_posture":
        counts.update(sync_permission_findings(job.tenant_id, summary["missing"]) or {})
    digest = fingerprint(spec.key, canonical)
    previous = latest_report(job.tenant_id, spec.key)
    if previous is not None and previous.fingerprint == digest:
        return {**counts, "unchanged": 1}  # the ledger commits the findings' last_seen_at
    report = StoredReport(tenant_id=job.tenant_id, report_type=spec.key, summary=summary, fingerprint=digest,
                          operation_run_id=job.run_id, created_at=utcnow())
    db.session.add(report)
    db.session.flush()
    report_id = report.id
    # The ledger commits the report with the tenant's result; the event follows that
    # commit (SPEC 6: telemetry after the action committed, never for a rolled-back one).
    job.after_commit(lambda: _record_created(job, spec, report_id))
    return {**counts, "stored": 1}


def _record_created(job: TenantJob, spec: ReportType, report_id: int) -> None:
    initiator = job.context.get("initiator") or {}
    if initiator.get("type") != "human" or initiator.get("id") is None:
        return  # product usage is the customers': system and platform-staff runs record nothing
    record_event(EVENT, workspace_id=job.workspace_id, tenant_id=job.tenant_id,
                     user_id=initiator["id"],
                     subject_type="stored_report", subject_id=str(report_id),
                     metadata={"report_type": spec.key})


# --- starting --------------------------------------------------------------------------

def start_report(tenant_id: int, report_type: str, actor: Actor, source: str = "tenant_ui"):
    """Start a report run through the start seam; returns its StartResult. A run of the
    same type already queued for the tenant is returned instead ("already queued")."""
    spec = REPORT_TYPES[report_type]
    return start_operation(spec.operation_type, scope=Scope("single_tenant", tenant_id=tenant_id), actor=actor,
                      source=source, context={"report_type": report_type})


def last_runs(tenant_id: int) -> dict[str, OperationRun | None]:
    """The newest run of each report type for a tenant (None when never run)."""
    return {key: db.session.scalars(
        select(OperationRun).where(OperationRun.tenant_id == tenant_id, OperationRun.type == spec.operation_type)
        .order_by(OperationRun.id.desc()).limit(1)).first() for key, spec in REPORT_TYPES.items()}


def latest_reports(tenant_id: int) -> dict[str, StoredReport | None]:
    """The newest stored report of each type (a report can exist without a run of its
    own: demo data, or a run since pruned)."""
    return {key: db.session.scalars(
        select(StoredReport).where(StoredReport.tenant_id == tenant_id, StoredReport.report_type == key)
        .order_by(StoredReport.id.desc()).limit(1)).first() for key in REPORT_TYPES}


def store_demo_report(tenant_id: int, report_type: str) -> StoredReport | None:
    """Demo data (``flask demo seed``): build and add one report without a run, and no
    telemetry (the demo seeds this family's events itself). No commit."""
    spec = REPORT_TYPES[report_type]
    try:
        summary, canonical, _ = spec.build(provider_client(tenant_id))
    except ProviderError:
        return None
    report = StoredReport(tenant_id=tenant_id, report_type=report_type, summary=summary,
                          fingerprint=fingerprint(report_type, canonical), created_at=utcnow())
    db.session.add(report)
    if report_type == "permission_posture":
        sync_permission_findings(tenant_id, summary["missing"])
    return report
