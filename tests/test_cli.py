"""CLI commands, migrations and the demo seed."""
from sqlalchemy import select

from tenantpilot.extensions import db
from tenantpilot.models import Membership, PlatformUser, Tenant, User, Workspace
from tenantpilot.testing import check_migrations, run_cli
from tests.helpers import count


def test_migrations_match_the_models(app):
    """`flask db upgrade` builds exactly the schema the models describe (the core's and
    every installed plugin's, on an empty database of the test backend)."""
    check_migrations(app)


def test_demo_seed_creates_logins_and_is_idempotent(app):
    result = run_cli(app, ["demo", "seed"])
    assert result.exit_code == 0 and "Seeded 3 workspaces and 12 tenants" in result.output
    assert run_cli(app, ["demo", "seed"]).output.strip() == "Demo data already present; nothing added."
    assert count(app, Workspace) == 3 and count(app, Tenant) == 12
    with app.app_context():
        ops = db.session.execute(select(PlatformUser).filter_by(email="ops@demo.test")).scalar_one()
        assert set(app.extensions["tenantpilot"].registry.platform_capabilities) == set(ops.capabilities)
        assert ops.check_password("demo-ops-pass")
        viewer = db.session.execute(select(PlatformUser).filter_by(email="viewer@demo.test")).scalar_one()
        assert sorted(viewer.capabilities) == ["platform.access_system_panel", "platform.console.view"]
        for role in ("owner", "manager", "operator", "readonly"):
            user = db.session.execute(select(User).filter_by(email=f"{role}@demo.test")).scalar_one()
            assert user.check_password(f"demo-{role}-pass")
            assert {m.role for m in db.session.scalars(select(Membership).filter_by(user_id=user.id))} == {role}
    logins = run_cli(app, ["demo", "logins"]).output
    assert "ops@demo.test" in logins and "demo-readonly-pass" in logins


def test_no_demo_logins_without_an_explicit_seed(app):
    assert count(app, PlatformUser) == 0 and count(app, User) == 0


def test_create_platform_user(app):
    result = run_cli(app, ["users", "create-platform-user", "--email", "Lead@Example.test", "--name", "Lead",
                           "--password", "a-long-password", "--capability", "platform.access_system_panel",
                           "--capability", "platform.console.view"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.execute(select(PlatformUser).filter_by(email="lead@example.test")).scalar_one()
        assert user.capabilities == ["platform.access_system_panel", "platform.console.view"]
    bad = run_cli(app, ["users", "create-platform-user", "--email", "x@example.test", "--name", "X",
                        "--password", "a-long-password", "--capability", "platform.everything"])
    assert bad.exit_code != 0 and "unknown capability: platform.everything" in bad.output
    dup = run_cli(app, ["users", "create-platform-user", "--email", "lead@example.test", "--name", "L",
                        "--password", "a-long-password", "--all-capabilities"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = run_cli(app, ["users", "create-platform-user", "--email", "y@example.test", "--name", "Y",
                          "--password", "short", "--all-capabilities"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    assert count(app, PlatformUser) == 1


def test_run_deploy_is_a_no_op_without_deploy_runbooks(make_app):
    from tenantpilot.models import OperationRun

    app = make_app(plugins=[])  # the core's default plugins only: no deploy runbook
    result = run_cli(app, ["runbooks", "run-deploy"])
    assert result.exit_code == 0 and "No deploy runbooks registered" in result.output
    assert count(app, OperationRun) == 0


def test_plain_db_upgrade_builds_every_plugin_branch(tmp_path):
    """`flask db upgrade` with no revision upgrades all heads (core + plugin branches)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import sqlalchemy

    root = Path(__file__).resolve().parent.parent
    db_file = tmp_path / "fresh.sqlite"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_file}", "TENANTPILOT_INSTANCE_PATH": str(tmp_path)}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=root, env=env,
                   check=True, capture_output=True)
    tables = set(sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{db_file}")).get_table_names())
    assert {"operation_runs", "audit_logs", "findings"} <= tables


def test_scheduler_once_runs_the_reaper(app):
    result = run_cli(app, ["scheduler", "--once"])
    assert result.exit_code == 0 and "ops.reap_abandoned_jobs" in result.output
    again = run_cli(app, ["scheduler", "--once"])
    assert "nothing due" in again.output
