"""Helpers shared by the restore plugin's test modules (imported by basename)."""
from __future__ import annotations

import re

from sqlalchemy import select

from tenantpilot.testing import csrf_token, post_form, signed_in  # noqa: F401  (signed_in: for the test modules)
from tenantpilot_restore.models import BackupItem, BackupSet
from tenantpilot_simulated import client as sim
from tenantpilot.sdk import ProviderConnection, db
from tenantpilot.testing import OperationalControlActivation

PAUSE_REASON = "Vendor incident INC-7781: restores on hold"


def connect(app, tenant, provider="simulated", **kw):
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider=provider, settings=kw.pop("settings", {}), **kw))
        db.session.commit()




def capture(app, client, tenant, drain) -> BackupSet:
    """Capture a backup through the tenant page and run the job; returns the new set."""
    r = post_form(client, f"/admin/t/{tenant.id}/backups/capture", None, page="/admin/")
    assert r.status_code == 302
    drain()
    with app.app_context():
        backup = db.session.scalars(select(BackupSet).where(BackupSet.tenant_id == tenant.id)
                                    .order_by(BackupSet.id.desc())).first()
        assert backup is not None, "the capture run made no backup set"
        db.session.expunge(backup)
        return backup


def backup_payloads(app, backup_id) -> dict:
    with app.app_context():
        return {(i.policy_type, i.external_id): i.payload for i in db.session.scalars(
            select(BackupItem).where(BackupItem.backup_set_id == backup_id))}


def item_ids(app, backup_id) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(BackupItem.id).where(BackupItem.backup_set_id == backup_id)
                                       .order_by(BackupItem.id)))


def sim_state(app, tenant) -> dict:
    with app.app_context():
        return sim.state(tenant.id)


def sim_calls(app, tenant) -> list:
    with app.app_context():
        return sim.calls(tenant.id)


def drift(app, tenant, n=None) -> int:
    with app.app_context():
        changed = sim.drift(tenant.id, n)
        db.session.commit()
        return changed


def pause(app, scope_type="global", workspace_id=None, reason=PAUSE_REASON):
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="restore.execute", scope_type=scope_type,
                                                    workspace_id=workspace_id, reason_text=reason))
        db.session.commit()


def confirm_data(client, backup_id, *, scope="all", items=(), dry_run=False, acknowledge=True, tenant_name=""):
    data = {"csrf_token": csrf_token(client, "/admin/"), "backup_set_id": str(backup_id), "scope": scope,
            "item_ids": [str(i) for i in items], "tenant_name": tenant_name}
    if dry_run:
        data["dry_run"] = "y"
    if acknowledge:
        data["acknowledge"] = "y"
    return data


def restore_run_id(response) -> int:
    m = re.search(r"/restore-runs/(\d+)$", response.headers["Location"])
    assert m, response.headers.get("Location")
    return int(m.group(1))
