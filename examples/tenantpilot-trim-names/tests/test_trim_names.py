"""The worked example's tests, written as a third party would: only ``tenantpilot.sdk``,
``tenantpilot.api`` and the kit ``tenantpilot.testing`` (a pytest plugin: no
``pytest_plugins`` line), against the installed, non-editable distribution."""
import json

import pytest
from sqlalchemy import select, text

from tenantpilot.sdk import Actor, OperationRun, Scope, Tenant, db, start_operation
from tenantpilot.testing import post_form, run_cli, signed_in, wait_for_run
from tenantpilot_trim_names import plugin


@pytest.fixture
def app(make_app):
    # Exactly this plugin (plus the core's defaults), whatever else is installed.
    return make_app(plugins=[plugin])


def start(app, actor, scope=Scope("all_tenants"), source="api"):
    with app.app_context():
        result = start_operation(plugin.KEY, scope=scope, actor=actor, source=source)
        return result.status, result.run.id if result.run else None


def preflight(app, scope=None):
    # Through the registry, as the operator flow and the deploy hook call it.
    with app.app_context():
        runbook = app.extensions["tenantpilot"].registry.runbooks[plugin.KEY]
        return runbook.preflight(scope or {"kind": "all_tenants"})


def finished_run(app, run_id):
    # A real RQ worker (burst mode) runs the queued tenant jobs until the run is done.
    run = wait_for_run(app, run_id)
    return run.status, run.outcome, run.summary_counts, run.failure_summary


def names(app):
    with app.app_context():
        return sorted(db.session.scalars(select(Tenant.name)))


def events(app):
    """The plugin's telemetry events, as (tenant, user, metadata) rows."""
    with app.app_context():
        rows = db.session.execute(text("SELECT tenant_id, user_id, metadata FROM product_usage_events "
                                       "WHERE event_name = :e ORDER BY id"), {"e": plugin.EVENT}).all()
        return [(t, u, m if isinstance(m, dict) else json.loads(m)) for t, u, m in rows]


def runs_of(app, tenant_id):
    with app.app_context():
        return list(db.session.scalars(select(OperationRun.id).where(OperationRun.tenant_id == tenant_id)
                                       .order_by(OperationRun.id)))


def test_preflight_is_read_only_and_counts_the_work(app, factory):
    ws = factory.workspace()
    factory.tenant(ws, name="  Contoso  ")
    factory.tenant(ws, name="Fabrikam")
    assert preflight(app) == {"affected_count": 1, "total_count": 2, "estimated_tenants": 1}
    assert names(app) == ["  Contoso  ", "Fabrikam"]


def test_trims_names_fails_blank_ones_and_is_idempotent(app, factory):
    ws = factory.workspace()
    factory.tenant(ws, name="  Contoso  ")
    factory.tenant(ws, name="Fabrikam")
    blank = factory.tenant(ws, name="   ")
    actor = Actor.platform(factory.platform_user())  # holds every registered capability
    assert preflight(app)["affected_count"] == 2  # the blank name needs trimming too

    status, run_id = start(app, actor)
    assert status == "started"
    status, outcome, counts, failures = finished_run(app, run_id)
    assert (status, outcome) == ("completed", "partially_succeeded")
    assert counts == {"processed": 2, "updated": 1, "unchanged": 1, "tenants": 3, "failed": 1}
    assert failures == [{"reason_code": "blank_name", "tenant_id": blank.id,
                         "message": "The tenant name is blank; set a name first."}]
    assert names(app) == ["   ", "Contoso", "Fabrikam"]
    assert preflight(app)["affected_count"] == 1  # only the blank name is left
    assert events(app) == []  # our own staff's runs are not product usage

    # The first run completed, so the same start is a new run; it changes nothing.
    status, second = start(app, actor)
    assert status == "started" and second != run_id
    assert finished_run(app, second)[2] == {"processed": 2, "unchanged": 2, "tenants": 3, "failed": 1}
    assert names(app) == ["   ", "Contoso", "Fabrikam"]


def test_the_name_tab_trims_one_tenant_and_records_the_event_after_the_commit(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="  Contoso ")
    other = factory.tenant(ws, name=" Fabrikam ")
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    tab = f"/admin/trim-names/t/{tenant.id}/name"

    client = signed_in(app, "admin", "manager@example.test")
    page = client.get(tab).get_data(as_text=True)
    assert '<mark title="leading spaces">··</mark>Contoso<mark title="trailing spaces">·</mark>' in page
    assert "3 stray spaces around the name." in page and "data-trim" in page
    assert f'href="{tab}"' in client.get(f"/admin/t/{tenant.id}/").get_data(as_text=True)  # the tab
    r = post_form(client, f"{tab}/trim", page=tab)
    assert r.status_code == 302
    [run_id] = runs_of(app, tenant.id)
    status, outcome, counts, _ = finished_run(app, run_id)
    assert (status, outcome, counts["updated"]) == ("completed", "succeeded", 1)
    assert names(app) == [" Fabrikam ", "Contoso"]  # only this tenant
    # One event, after the ledger committed the name, with only the declared metadata.
    assert events(app) == [(tenant.id, manager.id, {"source": "tenant_tab"})]
    assert "The name has no stray spaces." in client.get(tab).get_data(as_text=True)

    operator = signed_in(app, "admin", "operator@example.test")
    assert "data-trim" not in operator.get(f"/admin/trim-names/t/{other.id}/name").get_data(as_text=True)
    r = post_form(operator, f"/admin/trim-names/t/{other.id}/name/trim", page=f"/admin/trim-names/t/{other.id}/name")
    assert r.status_code == 403 and names(app) == [" Fabrikam ", "Contoso"]


def test_a_paused_control_hides_the_button_and_blocks_the_start(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name=" Contoso")
    factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    paused = run_cli(app, ["controls", "pause", "--key", plugin.KEY, "--global",
                           "--reason", "Name changes frozen for the audit"])
    assert paused.exit_code == 0, paused.output
    client = signed_in(app, "admin", "manager@example.test")
    tab = f"/admin/trim-names/t/{tenant.id}/name"
    page = client.get(tab).get_data(as_text=True)
    assert "Tenant name trimming is paused. Name changes frozen for the audit" in page and "data-trim" not in page
    # A form from before the pause: the start seam blocks it, no run exists.
    r = post_form(client, f"{tab}/trim", page=f"/admin/t/{tenant.id}/", follow_redirects=True)
    assert r.status_code == 200 and "paused" in r.get_data(as_text=True)
    assert runs_of(app, tenant.id) == [] and names(app) == [" Contoso"]


def test_the_skip_prefix_setting_leaves_matching_names_alone(make_app, factory):
    app = make_app(plugins=[plugin], TENANTPILOT_TRIM_NAMES_SKIP_PREFIX="_")
    f = type(factory)(app)
    ws = f.workspace()
    f.tenant(ws, name="_sandbox ")
    f.tenant(ws, name=" Contoso")
    assert preflight(app) == {"affected_count": 1, "total_count": 2, "estimated_tenants": 1}
    status, run_id = start(app, Actor.platform(f.platform_user()))
    assert finished_run(app, run_id)[2]["updated"] == 1
    assert names(app) == ["Contoso", "_sandbox "]


def test_the_stylesheet_is_linked_in_every_page_and_served(app):
    client = app.test_client()
    head = client.get("/admin/login").get_data(as_text=True).split("</head>")[0]
    href = "/static/plugins/tenantpilot_trim_names/trim_names.css"
    assert f'<link rel="stylesheet" href="{href}">' in head
    r = client.get(href)
    assert r.status_code == 200 and b".trim-names-preview mark" in r.data


def test_the_installed_distribution_loads_through_its_entry_point(make_app):
    # plugins=None loads the installed entry points, as every process does in production.
    registry = make_app().extensions["tenantpilot"].registry
    for kind, key in (("runbook", plugin.KEY), ("control", plugin.KEY), ("event", plugin.EVENT),
                      ("setting", plugin.SKIP_PREFIX), ("tenant page", "trim_names.name")):
        assert registry.owners[(kind, key)] == "trim_names"
    assert registry.operation_types[plugin.KEY].control_key == plugin.KEY
    assert "platform.runbooks.tenants.names.trim" in registry.platform_capabilities
