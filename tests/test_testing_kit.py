"""The test kit itself (tenantpilot.testing), as a plugin author meets it: found by pytest
without a pytest_plugins line, safe by default, plugin tables without installing, and
its helpers."""
import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from tenantpilot import timeutil
from tenantpilot.extensions import db
from tenantpilot.models import Tenant
from tenantpilot.testing import (check_migrations, detect_backends, form_fields, migration_diff, post_form,
                                 run_cli, signed_in)

MODEL = '''
from tenantpilot.extensions import db


class Gadget(db.Model):
    __tablename__ = "{table}"
    id = db.Column(db.Integer, primary_key=True)
    tenant_id = db.Column(db.ForeignKey("tenants.id"), nullable=False, index=True)
    name = db.Column(db.String(80), nullable=False)
'''
MIGRATION = '''
from alembic import op
import sqlalchemy as sa

revision = "{name}_0001"
down_revision = None
branch_labels = ("{name}",)
depends_on = "0001_core"


def upgrade():
    op.create_table(
        "{table}",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        {name_column}
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_{table}_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_{table}")),
    )
    op.create_index("ix_{table}_tenant_id", "{table}", ["tenant_id"])


def downgrade():
    op.drop_table("{table}")
'''


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """Writes a plugin package with a model and its own migration branch into a temp
    folder on sys.path: importable, never pip-installed. Returns a maker."""
    made = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name_column='sa.Column("name", sa.String(length=80), nullable=False),'):
        name = f"tp_throwaway_{uuid.uuid4().hex[:8]}"
        table = f"{name}_gadgets"
        package = tmp_path / name
        (package / "migrations" / "versions").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "models.py").write_text(MODEL.format(table=table))
        (package / "plugin.py").write_text("from . import models  # noqa: F401  (tables on db.metadata)\n")
        (package / "migrations" / "versions" / f"{name}_0001.py").write_text(
            MIGRATION.format(name=name, table=table, name_column=name_column))
        importlib.invalidate_caches()
        module = importlib.import_module(f"{name}.plugin")
        made.append(table)
        return module, importlib.import_module(f"{name}.models").Gadget

    yield make
    for table in made:  # later apps of this process load other plugins' models only
        db.metadata.remove(db.metadata.tables[table])


def test_an_uninstalled_plugins_tables_exist_for_make_app(make_app, factory, throwaway):
    plugin, Gadget = throwaway()
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(plugin.__name__.split(".")[0])
    app = make_app(plugins=[plugin])
    tenant = factory.tenant(factory.workspace())
    with app.app_context():
        db.session.add(Gadget(tenant_id=tenant.id, name="Widget"))
        db.session.commit()
        assert db.session.scalars(select(Gadget.name)).all() == ["Widget"]
        assert db.session.get(Tenant, tenant.id).name == tenant.name  # the core's tables are there too
    # A second app of the same test shares the database and its plugin tables.
    with make_app(plugins=[plugin]).app_context():
        assert db.session.scalars(select(Gadget.name)).all() == ["Widget"]


def test_the_next_test_does_not_see_the_throwaway_tables(app):
    with app.app_context():
        assert not [t for t in inspect(db.engine).get_table_names() if t.startswith("tp_throwaway_")]


def test_check_migrations_passes_when_the_migration_matches_the_model(make_app, throwaway):
    plugin, _ = throwaway()
    check_migrations(make_app(plugins=[plugin]))


def test_check_migrations_names_a_column_the_migration_forgot(make_app, throwaway):
    plugin, Gadget = throwaway(name_column="")
    app = make_app(plugins=[plugin])
    diff = migration_diff(app)
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", Gadget.__tablename__, "name")]
    with pytest.raises(AssertionError, match="migrations and models differ"):
        check_migrations(app)


def test_the_kit_is_a_pytest_plugin_through_its_entry_point():
    eps = importlib.metadata.entry_points(group="pytest11")
    assert [ep.value for ep in eps if ep.name == "tenantpilot.testing"] == ["tenantpilot.testing"]


def test_safe_by_default_sqlite_and_fakeredis_unless_named(monkeypatch):
    for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL", "TENANTPILOT_TEST_REQUIRE_REAL"):
        monkeypatch.delenv(name, raising=False)
    backends = detect_backends()
    assert (backends.database_url, backends.redis_url) == (None, None)
    assert "SQLite (temporary file)" in backends.describe()

    monkeypatch.setenv("TENANTPILOT_TEST_REQUIRE_REAL", "1")
    with pytest.raises(pytest.UsageError, match="TEST_DATABASE_URL .not set.*TEST_REDIS_URL .not set"):
        detect_backends()
    monkeypatch.setenv("TEST_DATABASE_URL", "mysql://db.example.test/prod")
    with pytest.raises(pytest.UsageError, match="must name a PostgreSQL database"):
        detect_backends()


def test_a_plugin_authors_suite_needs_no_pytest_plugins_line(tmp_path):
    """A third party's test file, run by pytest on its own: the kit's fixtures are there,
    and with no TEST_DATABASE_URL the database is a temporary SQLite file."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent('''
        def test_fixtures_come_from_the_kit(app, factory):
            assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
            assert factory.workspace().id
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "TENANTPILOT_TEST_"))}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "database=SQLite (temporary file); queue=in-process queue (fakeredis)" in result.stdout
    assert "1 passed" in result.stdout


def test_the_clock_moves_only_when_told_and_goes_back_after_the_test(clock):
    start = timeutil.utcnow()
    assert timeutil.utcnow() == start == clock()
    assert clock.advance(minutes=5) - start == timedelta(minutes=5) == timeutil.utcnow() - start
    assert timeutil.timestamp() == (start + timedelta(minutes=5)).replace(tzinfo=timezone.utc).timestamp()


def test_no_clock_is_left_installed():
    assert timeutil._clock is None


def test_form_fields_are_the_hidden_inputs_of_the_form_that_posts_there():
    page = '''
      <form method="post" action="/system/logout"><input type="hidden" name="csrf_token" value="T"></form>
      <form method="post" action="/system/ops/runbooks/x/confirm">
        <input id="csrf_token" name="csrf_token" type="hidden" value="T">
        <input type="hidden" name="idempotency_token" value="I">
        <input name="preflight" type="hidden" value="7">
        <input name="confirmation" value="">
      </form>'''
    assert form_fields(page, "/system/ops/runbooks/x/confirm") == {
        "csrf_token": "T", "idempotency_token": "I", "preflight": "7"}
    # A button's endpoint elsewhere: the session's CSRF token alone.
    assert form_fields(page, "/admin/t/1/reports/generate") == {"csrf_token": "T"}
    # A form without action posts to its own page.
    assert form_fields('<form method="post"><input type="hidden" name="csrf_token" value="S"></form>',
                       "/system/account", "/system/account") == {"csrf_token": "S"}


def test_signed_in_and_post_form_act_through_the_real_forms(app, factory):
    factory.platform_user(email="ops@example.test")
    with pytest.raises(AssertionError, match="could not sign in on /system"):
        signed_in(app, "system", "ops@example.test", "wrong-password")
    client = signed_in(app, "system", "ops@example.test")  # the factory's default password
    assert 'id="bell"' in client.get("/system/").get_data(as_text=True)
    assert post_form(client, "/system/logout", page="/system/").status_code == 302
    assert client.get("/system/").status_code == 302  # signed out
    # Without the CSRF token the same POST is refused: post_form really supplied it.
    client = signed_in(app, "system", "ops@example.test")
    assert client.post("/system/logout").status_code == 400


def test_run_cli_invokes_the_apps_commands(app):
    result = run_cli(app, "plugins")
    assert result.exit_code == 0 and "tenantpilot.alerts" in result.output
