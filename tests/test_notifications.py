"""In-app notifications on both planes: the bell's unread count, the list, opening one
(read, then its run), mark all read, and nobody else's notifications."""
import re

import pytest
from sqlalchemy import select

from tenantpilot import seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import Notification, User
from tenantpilot.runs import Scope
from tenantpilot.testing import csrf_from, signed_in
from tests.helpers import platform_actor


@pytest.fixture
def world(app, factory, drain):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Contoso")
    ops = factory.platform_user(email="ops@example.test")
    other_ops = factory.platform_user(email="other@example.test")
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    with app.app_context():
        run_id = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=platform_actor(app, ops),
                            source="system_ui", context={"reason_code": "SUPPORT", "reason_text": "check"}).run.id
        tenant_run = seam.start("findings.lifecycle.backfill", scope=Scope("single_tenant", tenant_id=tenant.id),
                                actor=Actor.human(db.session.get(User, manager.id)), source="tenant_ui").run.id
    drain()
    return {"ops": ops, "other": other_ops, "manager": manager, "run_id": run_id, "tenant_run": tenant_run,
            "tenant": tenant}


def test_the_bell_counts_unread_and_opening_leads_to_the_run(app, world):
    client = signed_in(app, "system", "ops@example.test", "platform-pass-123")
    console = client.get("/system/").get_data(as_text=True)
    assert 'id="bell"' in console and 'data-unread="1"' in console
    bell = client.get("/system/notifications/bell", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-unread="1"' in bell and 'hx-trigger="every 10s"' in bell
    page = client.get("/system/notifications").get_data(as_text=True)
    [note_id] = re.findall(r'data-notification="(\d+)" class="unread"', page)
    assert "Pipeline canary succeeded" in page
    r = client.post(f"/system/notifications/{note_id}/open", data={"csrf_token": csrf_from(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/system/ops/runs/{world['run_id']}")
    assert 'data-unread="0"' in client.get("/system/notifications/bell").get_data(as_text=True)


def test_tenant_users_see_theirs_and_open_the_tenant_run(app, world):
    client = signed_in(app, "admin", "manager@example.test", "user-pass-123")
    page = client.get("/admin/notifications").get_data(as_text=True)
    assert "1 unread" in page
    [note_id] = re.findall(r'data-notification="(\d+)"', page)
    r = client.post(f"/admin/notifications/{note_id}/open", data={"csrf_token": csrf_from(page)})
    assert r.headers["Location"].endswith(f"/admin/t/{world['tenant'].id}/runs/{world['tenant_run']}")


def test_nobody_opens_someone_elses_notification(app, world):
    with app.app_context():
        theirs = db.session.scalar(select(Notification.id).where(Notification.platform_user_id == world["ops"].id))
    other = signed_in(app, "system", "other@example.test", "platform-pass-123")
    page = other.get("/system/notifications").get_data(as_text=True)
    assert "No notifications yet" in page
    assert other.post(f"/system/notifications/{theirs}/open", data={"csrf_token": csrf_from(page)}).status_code == 404
    # Nor across planes: the tenant user's page never lists platform notifications.
    admin = signed_in(app, "admin", "manager@example.test", "user-pass-123")
    assert admin.post(f"/admin/notifications/{theirs}/open",
                      data={"csrf_token": csrf_from(admin.get("/admin/").get_data(as_text=True))}).status_code == 404


def test_mark_all_read(app, world):
    client = signed_in(app, "system", "ops@example.test", "platform-pass-123")
    page = client.get("/system/notifications").get_data(as_text=True)
    assert client.post("/system/notifications/read-all", data={"csrf_token": csrf_from(page)}).status_code == 302
    page = client.get("/system/notifications").get_data(as_text=True)
    assert "0 unread" in page and 'class="unread"' not in page
