"""Demo findings for `flask demo seed` (tenantpilot_seed_demo): for every tenant a mix
of legacy findings (missing first/last seen, legacy statuses, no SLA due date, drift
duplicates sharing a fingerprint) and clean ones, so the findings page and the lifecycle
backfill have something to show. Deterministic per tenant; bulk inserts."""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert, select

from tenantpilot.sdk import Tenant, db, utcnow
from .models import Finding
from .sla import DEFAULT_SLA_DAYS

DRIFT = [
    "Conditional Access policy 'Require MFA for admins' drifted from baseline",
    "Intune compliance policy 'Windows 11 baseline' changed outside change control",
    "Security defaults were turned off",
    "Named location 'Head office' IP ranges changed",
    "BitLocker configuration profile no longer requires TPM",
    "Exchange Online anti-phishing policy threshold lowered",
]
PERMISSION = [
    "App registration 'Backup Connector' holds Directory.ReadWrite.All",
    "Service principal 'Legacy Sync' has an expired client secret still in use",
    "Guest account holds the Global Reader role",
    "Five accounts hold the Global Administrator role",
    "Enterprise app 'Survey Tool' granted Mail.Read for all users",
]
COMPLIANCE = [
    "14 devices have not checked in for 30 days",
    "Audit log retention below 180 days",
    "Self-service password reset not enabled for all users",
    "Windows Update ring allows deferral beyond 30 days",
    "Defender for Endpoint onboarding incomplete on 6 devices",
]
TITLES = {"drift": DRIFT, "permission": PERMISSION, "compliance": COMPLIANCE}
SEVERITIES = ("critical", "high", "high", "medium", "medium", "medium", "low", "low")


def _row(rng, tenant_id, now, *, kind, legacy, title=None, fingerprint=None, seen_days_ago=None):
    severity = rng.choice(SEVERITIES)
    created = now - timedelta(days=seen_days_ago if seen_days_ago is not None else rng.randint(1, 200),
                              minutes=rng.randint(0, 1440))
    title = title or rng.choice(TITLES[kind])
    if legacy:
        status = rng.choice(("open", "open", "acknowledged", "fixed", "new", "triaged"))
        return {"tenant_id": tenant_id, "type": kind, "severity": severity, "status": status, "title": title,
                "fingerprint": fingerprint, "created_at": created,
                # Some legacy rows already carry one of the fields; most carry none.
                "first_seen_at": created if rng.random() < 0.2 else None,
                "last_seen_at": None, "due_at": None,
                "resolved_at": created + timedelta(days=2) if status == "fixed" else None}
    status = rng.choice(("new", "new", "triaged", "in_progress", "resolved"))
    last_seen = min(now, created + timedelta(days=rng.randint(0, 20)))
    return {"tenant_id": tenant_id, "type": kind, "severity": severity, "status": status, "title": title,
            "fingerprint": fingerprint, "created_at": created, "first_seen_at": created, "last_seen_at": last_seen,
            "due_at": created + timedelta(days=DEFAULT_SLA_DAYS[severity]) if status != "resolved" else None,
            "resolved_at": last_seen if status == "resolved" else None}


def seed() -> int:
    """Insert the demo findings for every non-platform tenant; returns how many."""
    now = utcnow()
    rows = []
    for tenant_id in db.session.scalars(select(Tenant.id).where(Tenant.is_platform.is_(False)).order_by(Tenant.id)):
        rng = random.Random(tenant_id)
        for i in range(rng.randint(30, 45)):
            kind = rng.choice(("drift", "permission", "compliance"))
            rows.append(_row(rng, tenant_id, now, kind=kind, legacy=rng.random() < 0.55,
                             fingerprint=f"{kind}:{tenant_id}:{i}" if kind == "drift" else None))
        # Drift duplicates: the same drifted setting reported several times (legacy import).
        for group in range(rng.randint(2, 3)):
            title = DRIFT[group]
            fingerprint = f"drift:{tenant_id}:setting-{group}"
            for copy in range(rng.randint(2, 4)):
                rows.append(_row(rng, tenant_id, now, kind="drift", legacy=copy > 0 or rng.random() < 0.5,
                                 title=title, fingerprint=fingerprint, seen_days_ago=rng.randint(1, 90)))
    if rows:
        db.session.execute(insert(Finding), rows)
    return len(rows)
