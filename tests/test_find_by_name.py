"""Issue 13, find things by name: runs and audit filters take tenant and workspace names
(with typeahead suggestions), the audit action filter matches a prefix, and the /system
header has a global search over tenants, workspaces, runs, runbooks and control keys."""
import pytest

from tenantpilot import audit, seam
from tenantpilot.actors import Actor
from tenantpilot.runs import Scope
from tenantpilot.testing import signed_in
from tests.helpers import platform_actor

CANARY = "ops.pipeline_canary"


@pytest.fixture
def ops(factory):
    return factory.platform_user(email="ops@example.test")


@pytest.fixture
def fleet(app, factory, ops):
    """Two workspaces; a run on each of three tenants (two named Contoso…)."""
    north, south = factory.workspace("Northwind MSP"), factory.workspace("Southwind MSP")
    tenants = {"contoso": factory.tenant(north, "Contoso Retail"), "contoso2": factory.tenant(south, "Contoso Labs"),
               "fabrikam": factory.tenant(north, "Fabrikam")}
    actor = platform_actor(app, ops)
    runs = {}
    with app.app_context():
        for key, t in tenants.items():
            result = seam.start(CANARY, scope=Scope("single_tenant", tenant_id=t.id), actor=actor,
                                source="system_ui", identity_inputs={"t": key})
            assert result.status == "started", result.message
            runs[key] = result.run.id
    return tenants, runs, (north, south)


def listed_runs(html):
    import re

    return sorted(int(x) for x in re.findall(r'data-run="(\d+)"', html))


def test_runs_list_filters_by_tenant_name_part_exact_and_link(app, fleet):
    tenants, runs, _ = fleet
    client = signed_in(app, "system", "ops@example.test")
    part = client.get("/system/ops/runs?tenant_name=contoso")
    html = part.get_data(as_text=True)
    assert part.status_code == 200
    assert listed_runs(html) == sorted([runs["contoso"], runs["contoso2"]])
    assert 'data-matched-tenants="2"' in html and "Runs of 2 tenants matching" in html
    exact = client.get("/system/ops/runs?tenant_name=Fabrikam").get_data(as_text=True)
    assert listed_runs(exact) == [runs["fabrikam"]]
    by_guid = client.get(f"/system/ops/runs?tenant_name={tenants['contoso2'].external_id}").get_data(as_text=True)
    assert listed_runs(by_guid) == [runs["contoso2"]]
    # Links from other pages still pass an id; the box shows the tenant's name.
    link = client.get(f"/system/ops/runs?tenant={tenants['fabrikam'].id}").get_data(as_text=True)
    assert listed_runs(link) == [runs["fabrikam"]] and 'value="Fabrikam"' in link


def test_runs_list_name_matching_nothing_lists_nothing_and_says_so(app, fleet):
    client = signed_in(app, "system", "ops@example.test")
    r = client.get("/system/ops/runs?tenant_name=Nonexistent")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and listed_runs(html) == []
    assert 'id="tenant_name-error"' in html and "No tenant matches “Nonexistent”." in html
    wildcard = client.get("/system/ops/runs?tenant_name=%25").get_data(as_text=True)
    assert listed_runs(wildcard) == [] and "No tenant matches “%”." in wildcard  # a character, not a wildcard


def test_runs_list_filters_by_workspace_name(app, fleet):
    _, runs, _ = fleet
    client = signed_in(app, "system", "ops@example.test")
    html = client.get("/system/ops/runs?workspace_name=northwind").get_data(as_text=True)
    assert listed_runs(html) == sorted([runs["contoso"], runs["fabrikam"]])
    both = client.get("/system/ops/runs?workspace_name=northwind&tenant_name=contoso").get_data(as_text=True)
    assert listed_runs(both) == [runs["contoso"]]


def test_a_name_matching_too_many_tenants_asks_for_more(app, factory, ops):
    factory.tenants(factory.workspace(), 501)
    client = signed_in(app, "system", "ops@example.test")
    html = client.get("/system/ops/runs?tenant_name=bulk").get_data(as_text=True)
    assert "More than 500 tenants match “bulk”: type more of the name." in html
    assert 'aria-invalid="true"' in html


def test_typeahead_suggestions_for_tenants_and_workspaces(app, fleet):
    client = signed_in(app, "system", "ops@example.test")
    html = client.get("/system/suggest/tenants?tenant_name=cont", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert html.count("<option") == 2 and 'value="Contoso Labs"' in html and 'value="Contoso Retail"' in html
    assert 'label="Southwind MSP · ' in html
    ws = client.get("/system/suggest/workspaces?workspace_name=south").get_data(as_text=True)
    assert ws.count("<option") == 1 and 'value="Southwind MSP"' in ws
    page = client.get("/system/ops/runs").get_data(as_text=True)
    assert 'list="tenant_name-suggestions"' in page and 'hx-get="/system/suggest/tenants"' in page


def test_suggestions_and_search_respect_capabilities(app, factory, fleet):
    factory.platform_user(email="console@example.test",
                          capabilities=["platform.access_system_panel", "platform.console.view"])
    client = signed_in(app, "system", "console@example.test")
    assert client.get("/system/suggest/tenants?tenant_name=c").status_code == 403
    html = client.get("/system/search?q=contoso").get_data(as_text=True)
    assert "Contoso" not in html.split('class="search-page"')[1]
    assert 'data-search-total="0"' in html


def test_audit_action_filter_matches_a_prefix(app, fleet, ops):
    with app.app_context():
        for action in ("operational_control.paused", "operational_control.resumed", "operational_controlx.other"):
            audit.record(action=action, actor=Actor.system("test"), summary=action)
        from tenantpilot.extensions import db

        db.session.commit()
    client = signed_in(app, "system", "ops@example.test")
    for value in ("operational_control.", "operational_control"):
        html = client.get(f"/system/audit?action={value}").get_data(as_text=True)
        assert "<code>operational_control.paused</code>" in html
        assert "<code>operational_control.resumed</code>" in html
        assert "operational_controlx.other" not in html.split("<table")[1]
    exact = client.get("/system/audit?action=operational_control.paused").get_data(as_text=True)
    assert "<code>operational_control.resumed</code>" not in exact
    assert client.get("/system/audit?action=.").status_code == 400
    # "_" is a character, not a LIKE wildcard.
    assert "<table" not in client.get("/system/audit?action=operational_contro_").get_data(as_text=True)


def test_audit_log_filters_by_tenant_and_workspace_name(app, fleet):
    tenants, runs, (north, _) = fleet
    with app.app_context():
        from tenantpilot.extensions import db

        for t in tenants.values():
            audit.record(action="tests.touched", actor=Actor.system("test"), workspace_id=t.workspace_id,
                         tenant_id=t.id, summary="touched")
        db.session.commit()
    client = signed_in(app, "system", "ops@example.test")
    html = client.get("/system/audit?tenant_name=Contoso+Labs&action=tests").get_data(as_text=True)
    rows = html.split("<tbody>")[1]
    assert "Contoso Labs" in rows and "Contoso Retail" not in rows and "Fabrikam" not in rows
    ws = client.get("/system/audit?workspace_name=Northwind+MSP&action=tests").get_data(as_text=True)
    rows = ws.split("<tbody>")[1]
    assert "Contoso Retail" in rows and "Fabrikam" in rows and "Contoso Labs" not in rows
    missing = client.get("/system/audit?tenant_name=Nobody")
    text = missing.get_data(as_text=True)
    assert missing.status_code == 400 and 'id="tenant_name-error"' in text and "No tenant matches “Nobody”." in text
    assert text.count("No tenant matches “Nobody”.") == 1  # next to the field only
    link = client.get(f"/system/audit?tenant={tenants['fabrikam'].id}").get_data(as_text=True)
    assert 'name="tenant_name" id="filter-tenant_name" value="Fabrikam"' in link


def test_global_search_finds_tenants_workspaces_runs_runbooks_and_controls(app, fleet):
    tenants, runs, _ = fleet
    client = signed_in(app, "system", "ops@example.test")
    page = client.get("/system/").get_data(as_text=True)
    assert 'class="header-search"' in page and 'name="q"' in page
    html = client.get("/system/search?q=contoso").get_data(as_text=True)
    assert 'data-section="Tenants"' in html and html.count('data-hit="tenant"') == 2
    assert "/system/ops/runs?tenant_name=Contoso+Labs" in html
    run = client.get(f"/system/search?q=%23{runs['fabrikam']}").get_data(as_text=True)
    assert f'href="/system/ops/runs/{runs["fabrikam"]}"' in run and f"Run #{runs['fabrikam']}" in run
    canary = client.get("/system/search?q=canary").get_data(as_text=True)
    assert 'data-hit="runbook"' in canary and f'href="/system/ops/runbooks/{CANARY}/preflight"' in canary
    control = client.get("/system/search?q=findings.lifecycle").get_data(as_text=True)
    assert 'data-hit="control"' in control and "/system/ops/controls#control-" in control
    ws = client.get("/system/search?q=southwind").get_data(as_text=True)
    assert 'data-hit="workspace"' in ws and "1 result for" in ws


def test_global_search_hostile_input(app, fleet):
    client = signed_in(app, "system", "ops@example.test")
    empty = client.get("/system/search?q=")
    assert empty.status_code == 200 and "Type a tenant or workspace name" in empty.get_data(as_text=True)
    long = client.get("/system/search?q=" + "x" * 201)
    assert long.status_code == 400 and "at most 200 characters" in long.get_data(as_text=True)
    xss = client.get("/system/search?q=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert(1)" not in xss and "&lt;script&gt;" in xss
    assert client.get("/system/search?q=%00").status_code == 400
    assert client.get("/system/search?q=%D9%A1%D9%A2").status_code == 200  # non-ASCII digits: no run id, no 500
    assert client.get("/system/search?q=99999999999999999999").status_code == 200
