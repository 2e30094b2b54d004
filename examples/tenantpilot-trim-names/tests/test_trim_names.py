import pytest
from sqlalchemy import select

from tenantpilot import seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import Tenant
from tenantpilot.runs import Scope
from tenantpilot.testing import wait_for_run
from tenantpilot_trim_names import plugin


@pytest.fixture
def app(make_app):
    # Exactly this plugin (plus the core's defaults), whatever else is installed.
    return make_app(plugins=[plugin])


def start(app, actor):
    with app.app_context():
        result = seam.start(plugin.KEY, scope=Scope("all_tenants"), actor=actor, source="api")
        return result.status, result.run.id if result.run else None


def preflight(app):
    # Through the registry, as the operator flow and the deploy hook call it.
    with app.app_context():
        runbook = app.extensions["tenantpilot"].registry.runbooks[plugin.KEY]
        return runbook.preflight({"kind": "all_tenants"})


def finished_run(app, run_id):
    # A real RQ worker (burst mode) runs the queued tenant jobs until the run is done.
    run = wait_for_run(app, run_id)
    return run.status, run.outcome, run.summary_counts, run.failure_summary


def names(app):
    with app.app_context():
        return sorted(db.session.scalars(select(Tenant.name)))


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

    # The first run completed, so the same start is a new run; it changes nothing.
    status, second = start(app, actor)
    assert status == "started" and second != run_id
    assert finished_run(app, second)[2] == {"processed": 2, "unchanged": 2, "tenants": 3, "failed": 1}
    assert names(app) == ["   ", "Contoso", "Fabrikam"]


def test_the_installed_distribution_loads_through_its_entry_point(make_app):
    # plugins=None loads the installed entry points, as every process does in production.
    registry = make_app().extensions["tenantpilot"].registry
    assert registry.owners[("runbook", plugin.KEY)] == "trim_names"
    assert registry.owners[("control", plugin.KEY)] == "trim_names"
    assert registry.operation_types[plugin.KEY].control_key == plugin.KEY
    assert "platform.runbooks.tenants.names.trim" in registry.platform_capabilities
