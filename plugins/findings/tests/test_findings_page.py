"""The tenant findings page (/admin/t/<tenant>/findings): who sees what, filters,
pagination, badges and SLA, and the "Backfill findings lifecycle" header action."""
import re

import pytest
from sqlalchemy import insert, select

from findings_helpers import PAUSE_REASON, T0, add, days, finding, pause
from tenantpilot.testing import post_form, signed_in
from tenantpilot_findings import plugin
from tenantpilot_findings.models import Finding
from tests.helpers import audit_rows, count, queued_jobs
from tenantpilot.sdk import OperationRun, db, utcnow

TITLE = "Findings lifecycle backfill paused"
BODY = f"Findings lifecycle backfill is currently paused. {PAUSE_REASON}"
BUTTON = "Backfill findings lifecycle"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


@pytest.fixture
def world(app, factory):
    ws, other = factory.workspace(), factory.workspace()
    tenant = factory.tenant(ws, name="Contoso HQ")
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(other, "owner")])
    return ws, tenant, users



def page(client, tenant, query=""):
    return client.get(f"/admin/t/{tenant.id}/findings{query}")


def post_backfill(client, tenant):
    return post_form(client, f"/admin/t/{tenant.id}/findings/backfill", page="/admin/")


def ids_on(html):
    return [int(i) for i in re.findall(r'data-finding="(\d+)"', html)]


def runs(app):
    with app.app_context():
        return db.session.scalars(select(OperationRun).order_by(OperationRun.id)).all()


def test_members_see_the_list_non_members_get_404(app, world):
    ws, tenant, users = world
    add(app, finding(tenant.id, title="Guest account holds the Global Reader role"))
    for role in ("owner", "manager", "operator", "readonly"):
        resp = page(signed_in(app, "admin", f"{role}@example.test"), tenant)
        assert resp.status_code == 200, role
        assert "Guest account holds the Global Reader role" in resp.get_data(as_text=True)
    outsider = signed_in(app, "admin", "outsider@example.test")
    assert page(outsider, tenant).status_code == 404
    assert outsider.get("/admin/t/999999/findings").status_code == 404
    anonymous = app.test_client().get(f"/admin/t/{tenant.id}/findings")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]


def test_only_tenant_managers_see_the_backfill_button(app, world):
    _, tenant, _ = world
    for role, visible in (("owner", True), ("manager", True), ("operator", False), ("readonly", False)):
        html = page(signed_in(app, "admin", f"{role}@example.test"), tenant).get_data(as_text=True)
        assert (BUTTON in html) is visible, role
        assert ('action="/admin/t/%d/findings/backfill"' % tenant.id in html) is visible, role


def test_archived_tenant_is_readable_but_offers_no_backfill(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, status="archived")
    factory.user(email="m@example.test", memberships=[(ws, "manager")])
    add(app, finding(tenant.id, title="Old finding"))
    html = page(signed_in(app, "admin", "m@example.test"), tenant).get_data(as_text=True)
    assert "Old finding" in html and BUTTON not in html


def test_filters_by_status_severity_and_type(app, world):
    _, tenant, _ = world
    crit_drift, high_perm, resolved = add(
        app, finding(tenant.id, type="drift", severity="critical", status="new", title="Drifted CA policy"),
        finding(tenant.id, type="permission", severity="high", status="triaged", title="Over-privileged app"),
        finding(tenant.id, type="compliance", severity="low", status="resolved", title="Stale devices"))
    client = signed_in(app, "admin", "readonly@example.test")
    assert ids_on(page(client, tenant).get_data(as_text=True)) == [resolved, high_perm, crit_drift]
    assert ids_on(page(client, tenant, "?status=resolved").get_data(as_text=True)) == [resolved]
    assert ids_on(page(client, tenant, "?severity=critical").get_data(as_text=True)) == [crit_drift]
    assert ids_on(page(client, tenant, "?type=permission").get_data(as_text=True)) == [high_perm]
    assert ids_on(page(client, tenant, "?type=drift&severity=high").get_data(as_text=True)) == []
    assert "No findings match these filters." in page(client, tenant, "?type=drift&severity=high").get_data(
        as_text=True)
    html = page(client, tenant, "?severity=critical").get_data(as_text=True)
    assert re.search(r'<option value="critical"\s+selected>', html)  # the form keeps the choice


def test_invalid_filter_values_get_a_clear_message(app, world):
    _, tenant, _ = world
    add(app, finding(tenant.id))
    client = signed_in(app, "admin", "readonly@example.test")
    resp = page(client, tenant, "?status=bogus&severity=urgent")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Unknown status &#39;bogus&#39;. Choose one of: new, triaged, in_progress, resolved" in html
    assert "Unknown severity &#39;urgent&#39;. Choose one of: critical, high, medium, low." in html
    assert ids_on(html) == []
    resp = page(client, tenant, "?before=abc")
    assert resp.status_code == 400 and "Invalid page cursor" in resp.get_data(as_text=True)


def test_keyset_pagination_fifty_per_page_newest_first(app, world):
    _, tenant, _ = world
    with app.app_context():
        db.session.execute(insert(Finding), [finding(tenant.id, title=f"Finding {i}") for i in range(120)])
        db.session.commit()
        all_ids = sorted(db.session.scalars(select(Finding.id)), reverse=True)
    client = signed_in(app, "admin", "readonly@example.test")

    first = page(client, tenant).get_data(as_text=True)
    assert ids_on(first) == all_ids[:50]
    assert "Older" in first and "Newer" not in first
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert ids_on(second) == all_ids[50:100]
    assert "Older" in second and "Newer" in second
    third = client.get(re.search(r'href="([^"]+)" rel="next"', second).group(1).replace("&amp;", "&"))
    third = third.get_data(as_text=True)
    assert ids_on(third) == all_ids[100:]
    assert "Older" not in third
    back = client.get(re.search(r'href="([^"]+)" rel="prev"', third).group(1).replace("&amp;", "&"))
    assert ids_on(back.get_data(as_text=True)) == all_ids[50:100]
    # Filters survive paging.
    filtered = page(client, tenant, "?status=open").get_data(as_text=True)
    assert "status=open" in re.search(r'href="([^"]+)" rel="next"', filtered).group(1)


def test_badges_and_sla_due_with_overdue_highlighted(app, world):
    _, tenant, _ = world
    now = utcnow()
    overdue, due_later, resolved_late, no_due = add(
        app,
        finding(tenant.id, severity="critical", status="new", first_seen_at=now - days(10),
                last_seen_at=now, due_at=now - days(7), title="Overdue one"),
        finding(tenant.id, severity="low", status="triaged", first_seen_at=now, last_seen_at=now,
                due_at=now + days(90), title="Due later"),
        finding(tenant.id, severity="high", status="resolved", first_seen_at=now - days(30), last_seen_at=now,
                due_at=now - days(23), resolved_at=now, title="Resolved late"),
        finding(tenant.id, severity="medium", status="open", title="Legacy without due date"))
    html = page(signed_in(app, "admin", "readonly@example.test"), tenant).get_data(as_text=True)
    rows = {int(i): body for i, body in re.findall(r'<tr data-finding="(\d+)"[^>]*>(.*?)</tr>', html, re.S)}
    assert '<span class="badge badge-bad">critical</span>' in rows[overdue]
    assert '<span class="badge badge-neutral">low</span>' in rows[due_later]
    assert '<span class="badge badge-ok">resolved</span>' in rows[resolved_late]
    assert '<span class="badge badge-info">new</span>' in rows[overdue]
    assert "Overdue" in rows[overdue] and (now - days(7)).strftime("%Y-%m-%d") in rows[overdue]
    assert re.search(r'<tr data-finding="%d" class="overdue">' % overdue, html)
    assert "Overdue" not in rows[due_later] and (now + days(90)).strftime("%Y-%m-%d") in rows[due_later]
    assert "Overdue" not in rows[resolved_late]  # resolved findings are never overdue
    assert "not set" in rows[no_due] and "legacy" in rows[no_due]


def test_manager_starts_one_run_and_a_second_post_is_already_queued(app, world):
    _, tenant, users = world
    client = signed_in(app, "admin", "manager@example.test")
    resp = post_backfill(client, tenant)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/admin/t/{tenant.id}/findings")
    [run] = runs(app)
    assert (run.type, run.tenant_id, run.status) == ("findings.lifecycle.backfill", tenant.id, "queued")
    assert run.context["source"] == "tenant_ui" and run.initiator_user_id == users["manager"].id
    assert queued_jobs(app) == 1
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"Findings lifecycle backfill started (run #{run.id})." in html

    again = post_backfill(client, tenant)
    assert again.status_code == 302
    html = client.get(again.headers["Location"]).get_data(as_text=True)
    assert f"Findings lifecycle backfill is already queued (run #{run.id})." in html
    assert len(runs(app)) == 1 and queued_jobs(app) == 1


def test_backfill_from_the_page_repairs_the_tenant(app, world, drain):
    _, tenant, _ = world
    legacy = add(app, finding(tenant.id, status="acknowledged", severity="high"))[0]
    client = signed_in(app, "admin", "owner@example.test")
    assert post_backfill(client, tenant).status_code == 302
    drain(app)
    with app.app_context():
        f = db.session.get(Finding, legacy)
        assert (f.status, f.first_seen_at, f.due_at) == ("triaged", T0, T0 + days(7))
    html = page(client, tenant).get_data(as_text=True)
    assert "last lifecycle backfill: run #1" in html and "succeeded" in html


def test_non_members_get_404_and_operators_403_even_when_paused(app, world):
    ws, tenant, _ = world
    pause(app, "workspace", ws.id)
    assert post_backfill(signed_in(app, "admin", "outsider@example.test"), tenant).status_code == 404
    for role in ("operator", "readonly"):
        resp = post_backfill(signed_in(app, "admin", f"{role}@example.test"), tenant)
        assert resp.status_code == 403, role
        assert "paused" not in resp.get_data(as_text=True).lower()
    assert runs(app) == [] and queued_jobs(app) == 0


@pytest.mark.parametrize("scope_type", ["global", "workspace"])
def test_paused_answers_409_with_the_paused_message_and_starts_nothing(app, world, scope_type):
    ws, tenant, users = world
    pause(app, scope_type, ws.id if scope_type == "workspace" else None)
    client = signed_in(app, "admin", "manager@example.test")
    resp = post_backfill(client, tenant)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert f"<strong>{TITLE}</strong>" in html and f"<p>{BODY}</p>" in html
    assert BUTTON in html  # the action stays visible, with its paused state inline
    assert runs(app) == [] and queued_jobs(app) == 0
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert (event.workspace_id, event.tenant_id, event.meta["source"]) == (ws.id, tenant.id, "tenant_ui")

    html = page(client, tenant).get_data(as_text=True)
    form = re.search(r'<form[^>]*data-action="findings-backfill".*?</form>', html, re.S).group(0)
    assert BUTTON in form and "Paused" in form and PAUSE_REASON in form


def test_a_pause_of_another_workspace_does_not_block(app, world, factory):
    _, tenant, _ = world
    pause(app, "workspace", factory.workspace().id)
    client = signed_in(app, "admin", "manager@example.test")
    assert "Paused" not in page(client, tenant).get_data(as_text=True)
    assert post_backfill(client, tenant).status_code == 302 and len(runs(app)) == 1


def test_post_without_csrf_token_is_refused(app, world):
    _, tenant, _ = world
    client = signed_in(app, "admin", "manager@example.test")
    assert client.post(f"/admin/t/{tenant.id}/findings/backfill").status_code == 400
    assert count(app, OperationRun) == 0


def test_every_tenant_page_has_a_findings_tab(app, world):
    _, tenant, _ = world
    client = signed_in(app, "admin", "readonly@example.test")
    home = client.get(f"/admin/t/{tenant.id}/").get_data(as_text=True)
    assert re.search(r'<a href="/admin/t/%d/findings"\s+data-tenant-page="findings.list">Findings</a>' % tenant.id, home)
    findings_page = page(client, tenant).get_data(as_text=True)
    assert re.search(r'href="/admin/t/%d/findings" aria-current="page" data-tenant-page="findings.list"' % tenant.id,
                     findings_page)
