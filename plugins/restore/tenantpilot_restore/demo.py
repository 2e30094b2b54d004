"""Demo backups for `flask demo seed`: a week-old baseline backup set per connected
tenant whose first few items hold the settings approved back then, so the restore
wizard's preview has real differences to show against the provider's current state."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tenantpilot.sdk import ProviderConnection, Tenant, db, utcnow
from .models import BackupItem
from .service import snapshot


def seed() -> None:
    tenants = db.session.scalars(select(Tenant).join(ProviderConnection, ProviderConnection.tenant_id == Tenant.id)
                                 .where(Tenant.is_platform.is_(False)).order_by(Tenant.id)).all()
    for i, tenant in enumerate(tenants):
        try:
            backup = snapshot(tenant.id, name="Baseline approved by change board", created_by="Demo data")
        except Exception:  # a tenant whose provider is unreachable simply has no demo backup
            db.session.rollback()
            continue
        backup.created_at = utcnow() - timedelta(days=7 + i)
        items = db.session.scalars(select(BackupItem).where(BackupItem.backup_set_id == backup.id)
                                   .order_by(BackupItem.id).limit(2 + i % 3)).all()
        for item in items:
            item.payload = {**item.payload, "description": "Approved baseline (change CHG-1042)"}
        db.session.commit()
