"""Two app factories in one process do not affect each other (issue 14): engine events
stay on each app's own engine, sign-in redirects go to each app's own login, logging is
configured once and stays visible to the host, Flask-Migrate's own commands are untouched,
and per-process counters live on the app."""
import logging

import pytest
from sqlalchemy import create_engine, text

from tenantpilot.extensions import db


def test_engine_events_stay_on_each_apps_engine(make_app, tmp_path):
    a = make_app()
    b = make_app()
    with a.app_context():
        engine_a = db.engine
    with b.app_context():
        engine_b = db.engine
    assert engine_a is not engine_b
    # A plain engine made elsewhere in the process keeps SQLAlchemy's own behaviour.
    plain = create_engine(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    with plain.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() != "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 0
    # No listener reaches it through the Engine class: the apps' listeners are their own.
    assert len(plain.dispatch.begin) == 0


def test_each_app_redirects_to_its_own_login(make_app):
    a, b = make_app(), make_app()
    for app in (a, b, a):
        r = app.test_client().get("/system/ops/runs")
        assert r.status_code == 302 and r.headers["Location"] == "/system/login?next=/system/ops/runs"
        r = app.test_client().get("/admin/", headers={"HX-Request": "true"})
        assert r.status_code == 401 and r.headers["HX-Redirect"] == "/admin/login"


def test_logging_reaches_the_host_and_is_configured_once(make_app, caplog):
    make_app()
    make_app()
    ours = logging.getLogger("tenantpilot")
    json_handlers = [h for h in ours.handlers if type(h.formatter).__name__ == "JsonFormatter"]
    assert len(json_handlers) <= 1
    with caplog.at_level(logging.INFO, logger="tenantpilot"):
        logging.getLogger("tenantpilot.test").info("visible to the host")
    assert "visible to the host" in caplog.text


def test_flask_migrate_commands_are_left_as_they_are(make_app):
    from flask_migrate.cli import upgrade as library_upgrade

    app = make_app()
    ours = app.cli.get_command(None, "db").get_command(None, "upgrade")
    assert ours is not library_upgrade
    assert [p.default for p in ours.params if p.name == "revision"] == ["heads"]
    assert [p.default for p in library_upgrade.params if p.name == "revision"] == ["head"]


def test_telemetry_error_counts_are_per_app(make_app):
    from tenantpilot import telemetry

    a, b = make_app(REDIS_URL="redis://127.0.0.1:1/0"), make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with a.test_request_context():
        telemetry.record("no.such.event", workspace_id=1, tenant_id=1)
        telemetry.record("no.such.event", workspace_id=1, tenant_id=1)
        assert telemetry.error_count() == 2
    with b.test_request_context():
        assert telemetry.error_count() == 0
