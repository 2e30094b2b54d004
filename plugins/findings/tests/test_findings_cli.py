"""`flask findings backfill-lifecycle`, the deploy hook `flask runbooks run-deploy`, the
demo seed, the migration branch and the plugin's registrations."""
import pytest
from sqlalchemy import func, select, text

from findings_helpers import PAUSE_REASON, add, finding, pause
from tenantpilot_findings import plugin
from tenantpilot_findings.backfill import preflight
from tenantpilot_findings.models import Finding
from tenantpilot.testing import migration_dirs, run_cli
from tests.helpers import count, queued_jobs, run_row
from tenantpilot.sdk import OperationRun, db

PAUSED = ("Findings lifecycle backfill paused\n"
          f"Findings lifecycle backfill is currently paused. {PAUSE_REASON}\n")


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


def cli(app, *args):
    return run_cli(app, args)


def all_runs(app):
    with app.app_context():
        return db.session.scalars(select(OperationRun).order_by(OperationRun.id)).all()


def test_cli_starts_the_backfill_for_one_tenant(app, factory, drain):
    tenant = factory.tenant(factory.workspace())
    legacy = add(app, finding(tenant.id, status="fixed"))[0]
    result = cli(app, "findings", "backfill-lifecycle", "--tenant", str(tenant.id))
    [run] = all_runs(app)
    assert result.exit_code == 0, result.output
    assert result.output == f"Findings lifecycle backfill started (run #{run.id}).\n"
    assert run.context["source"] == "cli" and run.context["initiator"]["name"] == "CLI"
    assert run.tenant_id == tenant.id and run.initiator_user_id is None

    if app.extensions["tenantpilot"].embedded:
        # No Redis: the in-process queue dies with the CLI, so the command ran its job itself.
        assert run_row(app, run.id).status == "completed"
    else:
        again = cli(app, "findings", "backfill-lifecycle", "--tenant", str(tenant.id))
        assert again.exit_code == 0
        assert again.output == f"Findings lifecycle backfill is already queued (run #{run.id}).\n"
        assert len(all_runs(app)) == 1
        drain(app)
    assert run_row(app, run.id).summary_counts["updated"] == 1
    with app.app_context():
        assert db.session.get(Finding, legacy).status == "resolved"


def test_cli_paused_exits_3_with_the_paused_message_and_starts_nothing(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    pause(app, "workspace", ws.id)
    result = cli(app, "findings", "backfill-lifecycle", "--tenant", str(tenant.id))
    assert result.exit_code == 3
    assert result.output == PAUSED
    assert all_runs(app) == [] and queued_jobs(app) == 0


def test_cli_unknown_or_inactive_tenant_exits_2(app, factory):
    result = cli(app, "findings", "backfill-lifecycle", "--tenant", "4242")
    assert result.exit_code == 2 and "tenant 4242 not found" in result.output
    archived = factory.tenant(factory.workspace(), status="archived")
    result = cli(app, "findings", "backfill-lifecycle", "--tenant", str(archived.id))
    assert result.exit_code == 2 and "is archived" in result.output
    missing = cli(app, "findings", "backfill-lifecycle")
    assert missing.exit_code == 2 and "--tenant" in missing.output
    assert count(app, OperationRun) == 0


def test_deploy_hook_starts_the_all_tenants_backfill_only_when_there_is_work(app, factory, drain):
    ws = factory.workspace()
    a, b = factory.tenant(ws), factory.tenant(ws)
    clean = factory.tenant(ws)
    add(app, finding(a.id), finding(b.id, status="acknowledged"),
        finding(clean.id, status="new", first_seen_at=finding(0)["created_at"],
                last_seen_at=finding(0)["created_at"], due_at=finding(0)["created_at"]))
    result = cli(app, "runbooks", "run-deploy")
    [run] = all_runs(app)
    assert result.exit_code == 0
    assert f"Findings lifecycle backfill: Findings lifecycle backfill started. (run #{run.id})" in result.output
    assert run.context["source"] == "deploy_hook" and run.context["scope"]["kind"] == "all_tenants"
    assert run.context["preflight"] == {"affected_count": 2, "total_count": 3, "estimated_tenants": 2,
                                        "scope_tenants": 3}
    drain(app)
    done = run_row(app, run.id)
    assert (done.outcome, done.summary_counts["updated"]) == ("succeeded", 2)

    again = cli(app, "runbooks", "run-deploy")
    assert again.exit_code == 0
    assert "Findings lifecycle backfill: preflight found nothing to do." in again.output
    assert len(all_runs(app)) == 1


def test_deploy_hook_with_no_findings_has_nothing_to_do(app, factory):
    factory.tenant(factory.workspace())
    result = cli(app, "runbooks", "run-deploy")
    assert result.exit_code == 0 and "Findings lifecycle backfill: preflight found nothing to do." in result.output
    assert count(app, OperationRun) == 0


def test_deploy_hook_exits_0_with_the_paused_message_when_paused(app, factory):
    tenant = factory.tenant(factory.workspace())
    add(app, finding(tenant.id))
    pause(app)
    result = cli(app, "runbooks", "run-deploy")
    assert result.exit_code == 0
    assert ("Findings lifecycle backfill paused: Findings lifecycle backfill is currently paused. "
            f"{PAUSE_REASON} Skipped.") in result.output
    assert count(app, OperationRun) == 0 and queued_jobs(app) == 0


def test_demo_seed_adds_legacy_and_clean_findings_to_every_tenant(app, drain):
    result = cli(app, "demo", "seed")
    assert result.exit_code == 0 and "Seeded 3 workspaces and 12 tenants" in result.output
    with app.app_context():
        per_tenant = dict(db.session.execute(
            select(Finding.tenant_id, func.count()).group_by(Finding.tenant_id)).all())
        statuses = set(db.session.scalars(select(Finding.status).distinct()))
        duplicated = db.session.scalar(select(func.count()).select_from(
            select(Finding.tenant_id, Finding.fingerprint).where(Finding.type == "drift")
            .group_by(Finding.tenant_id, Finding.fingerprint).having(func.count() > 1).subquery()))
        missing_dates = db.session.scalar(select(func.count()).where(Finding.first_seen_at.is_(None)))
        work = preflight({"kind": "all_tenants"})
    assert len(per_tenant) == 12 and min(per_tenant.values()) >= 30
    assert {"open", "acknowledged", "fixed"} <= statuses and {"new", "triaged", "resolved"} <= statuses
    assert duplicated >= 12 and missing_dates > 0
    assert 0 < work["affected_count"] < work["total_count"] and work["estimated_tenants"] == 12

    # The demo is what the deploy hook repairs on a fresh install.
    assert cli(app, "runbooks", "run-deploy").exit_code == 0
    drain(app)
    [run] = all_runs(app)
    assert run_row(app, run.id).summary_counts["updated"] == work["affected_count"]
    with app.app_context():
        assert preflight({"kind": "all_tenants"})["affected_count"] == 0


def test_the_findings_table_comes_from_the_plugins_own_migration_branch(app):
    dirs = migration_dirs(app)
    assert [d for d in dirs if d.endswith("tenantpilot_findings/migrations/versions")]
    with app.app_context():
        versions = set(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    assert "findings_0001" in versions


def test_registrations(app):
    reg = app.extensions["tenantpilot"].registry
    runbook = reg.runbooks["findings.lifecycle.backfill"]
    assert (runbook.label, runbook.capability, runbook.confirmation_word) == (
        "Findings lifecycle backfill", "platform.runbooks.findings.lifecycle_backfill", "BACKFILL")
    assert runbook.control_key == "findings.lifecycle.backfill" and runbook.run_on_deploy
    assert runbook.tenant_capabilities == ("tenant.manage",)
    control = reg.control_keys["findings.lifecycle.backfill"]
    assert control.label == "Findings lifecycle backfill"
    assert control.operation_types == ("findings.lifecycle.backfill",)
    assert "platform.runbooks.findings.lifecycle_backfill" in reg.platform_capabilities
    with app.app_context():
        card = app.jinja_env.get_template(runbook.templates["preflight_detail"]).render()
    assert "critical 3 days, high 7 days, medium 30 days, low 90 days after first seen" in card
