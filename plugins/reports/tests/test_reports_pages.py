"""The Reports tab and a report's detail page: who sees what, tenant scoping (another
tenant's report is a 404), and that rendering (and the htmx refresh) records nothing."""
import re

import pytest

from reports_helpers import (ALL_REQUIRED, POSTURE, ROLES, connect, events, generate, reports, set_permissions,
                             set_roles, signed_in)
from tenantpilot_findings import plugin as findings
from tenantpilot_reports import plugin
from tenantpilot_simulated import plugin as simulated
from tests.helpers import count
from tenantpilot.sdk import db
from tenantpilot.testing import ProductUsageEvent


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated, findings])


@pytest.fixture
def world(app, factory, drain):
    ws_a, ws_b = factory.workspace("Workspace A"), factory.workspace("Workspace B")
    tenant_a, tenant_b = factory.tenant(ws_a, name="Alpha Tenant"), factory.tenant(ws_b, name="Bravo Tenant")
    for t in (tenant_a, tenant_b):
        connect(app, t)
        set_roles(app, t, [("Global Administrator", "p-1", "user"), ("Security Reader", "p-2", "user"),
                           ("Security Reader", "p-3", "group")])
    set_permissions(app, tenant_a, ALL_REQUIRED)
    set_permissions(app, tenant_b, ALL_REQUIRED)
    for role in ("operator", "readonly"):
        factory.user(email=f"{role}@example.test", memberships=[(ws_a, role)])
    factory.user(email="bravo@example.test", memberships=[(ws_b, "operator")])
    client = signed_in(app, "admin", "operator@example.test")
    for report_type in (POSTURE, ROLES):
        generate(client, tenant_a, report_type)
    generate(signed_in(app, "admin", "bravo@example.test"), tenant_b, POSTURE)
    drain()
    # A second posture report of tenant A, with two permissions missing, to compare against.
    set_permissions(app, tenant_a, ALL_REQUIRED[2:])
    set_roles(app, tenant_a, [("Global Administrator", "p-1", "user"), ("Global Administrator", "p-9", "user")])
    for report_type in (POSTURE, ROLES):
        generate(client, tenant_a, report_type)
    drain()
    return tenant_a, tenant_b


def ids(app, tenant, report_type):
    return [r.id for r in reports(app, tenant) if r.report_type == report_type]


def test_the_list_shows_reports_newest_first_with_both_actions_and_last_runs(app, world):
    tenant_a, _ = world
    html = signed_in(app, "admin", "operator@example.test").get(f"/admin/t/{tenant_a.id}/reports").get_data(as_text=True)
    assert 'data-tenant-page="reports.list"' in html and 'aria-current="page" data-tenant-page="reports.list"' in html
    assert "Generate permission posture report" in html and "Generate Entra admin roles report" in html
    rows = [int(i) for i in re.findall(r'data-report="(\d+)"', html)]
    assert rows == sorted(ids(app, tenant_a, POSTURE) + ids(app, tenant_a, ROLES), reverse=True) and len(rows) == 4
    assert "3 of 5 required permissions granted · 2 missing" in html
    assert "2 role assignments across 1 role" in html
    assert html.count('data-run-result="stored"') == 2
    # Nothing running: the reports section does not poll (the top bar's bell polls on every page).
    assert not re.search(r'id="reports-live"\s+hx-get', html) and 'hx-trigger="every 2s"' not in html


def test_readonly_members_see_the_reports_but_no_actions(app, world):
    tenant_a, _ = world
    client = signed_in(app, "admin", "readonly@example.test")
    html = client.get(f"/admin/t/{tenant_a.id}/reports").get_data(as_text=True)
    assert "data-report=" in html and "Generate permission posture report" not in html
    report_id = ids(app, tenant_a, POSTURE)[-1]
    assert client.get(f"/admin/t/{tenant_a.id}/reports/{report_id}").status_code == 200


def test_the_posture_detail_lists_missing_permissions_and_what_changed(app, world):
    tenant_a, _ = world
    first, second = ids(app, tenant_a, POSTURE)
    client = signed_in(app, "admin", "operator@example.test")
    html = client.get(f"/admin/t/{tenant_a.id}/reports/{second}").get_data(as_text=True)
    missing = ALL_REQUIRED[:2]
    for name in missing:
        assert f'data-permission="{name}"' in html
    assert html.count('data-permission-status="missing"') == 2 and html.count('data-permission-status="granted"') == 3
    assert "Newly missing" in html and ", ".join(missing) in html
    assert f'data-link="previous">#{first}<' in html
    assert 'data-link="findings"' in html  # the open permission findings, on the findings page


def test_the_roles_detail_draws_a_bar_per_role_with_the_change(app, world):
    tenant_a, _ = world
    first, second = ids(app, tenant_a, ROLES)
    client = signed_in(app, "admin", "operator@example.test")
    html = client.get(f"/admin/t/{tenant_a.id}/reports/{first}").get_data(as_text=True)
    assert re.search(r'data-role="Security Reader".*?class="rp-w100".*?data-role-count>2<', html, re.S)
    assert re.search(r'data-role="Global Administrator" class="privileged".*?class="rp-w50"', html, re.S)
    html = client.get(f"/admin/t/{tenant_a.id}/reports/{second}").get_data(as_text=True)
    assert re.search(r'data-role="Global Administrator".*?data-role-count>2<.*?\+1', html, re.S)
    assert re.search(r'data-role="Security Reader" class="gone".*?−2', html, re.S)
    assert "p-1" not in html and "p-9" not in html


def test_another_tenants_report_and_a_non_member_are_404(app, world):
    tenant_a, tenant_b = world
    client = signed_in(app, "admin", "operator@example.test")
    [bravo_report] = ids(app, tenant_b, POSTURE)
    assert client.get(f"/admin/t/{tenant_a.id}/reports/{bravo_report}").status_code == 404
    assert client.get(f"/admin/t/{tenant_b.id}/reports/{bravo_report}").status_code == 404
    assert client.get(f"/admin/t/{tenant_b.id}/reports").status_code == 404
    assert client.get(f"/admin/t/{tenant_a.id}/reports/999999").status_code == 404


def test_pages_render_and_record_nothing(app, world):
    tenant_a, _ = world
    before_events = count(app, ProductUsageEvent)
    client = signed_in(app, "admin", "operator@example.test")
    urls = [f"/admin/t/{tenant_a.id}/reports", f"/admin/t/{tenant_a.id}/reports?before=3"]
    urls += [f"/admin/t/{tenant_a.id}/reports/{i}" for i in ids(app, tenant_a, POSTURE) + ids(app, tenant_a, ROLES)]
    for url in urls:
        assert client.get(url).status_code == 200
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 200  # the polling refresh
    assert count(app, ProductUsageEvent) == before_events
    assert len(events(app)) == 5


def test_the_list_polls_while_a_run_is_active(app, world):
    tenant_a, _ = world
    client = signed_in(app, "admin", "operator@example.test")
    generate(client, tenant_a, ROLES)  # queued, not drained
    html = client.get(f"/admin/t/{tenant_a.id}/reports").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and 'data-run-status="queued"' in html


def test_a_card_with_reports_but_no_run_shows_the_latest_report(app, factory):
    """Demo data stores reports without runs: the card must not say "Never generated."."""
    from tenantpilot_reports import service

    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Demo Tenant")
    connect(app, tenant)
    factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    with app.app_context():
        report = service.store_demo_report(tenant.id, POSTURE)
        db.session.commit()
        report_id = report.id
    html = signed_in(app, "admin", "operator@example.test").get(f"/admin/t/{tenant.id}/reports").get_data(as_text=True)
    card = re.search(rf'data-report-type="{POSTURE}".*?</article>', html, re.S).group(0)
    assert "Never generated." not in card and f"#{report_id}</a>" in card
    roles_card = re.search(rf'data-report-type="{ROLES}".*?</article>', html, re.S).group(0)
    assert "Never generated." in roles_card
