"""The app factory: one Flask app serving both planes (/system and /admin)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, g, redirect, request, url_for
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as config_module
from . import logs
from .extensions import csrf, db, login_manager, migrate
from .planes import PlaneSessionInterface, current_plane
from .plugins import build_registry, make_plugin_manager, plugin_template_dirs

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("tenantpilot.http")


@dataclass
class TenantPilotState:
    """Per-app state kept in app.extensions['tenantpilot'] (never a module global)."""

    pm: Any
    registry: Any
    redis: Any
    embedded: bool
    worker_thread: Any = None
    scheduler_thread: Any = None
    telemetry_errors: int = 0  # this process's telemetry recording failures (also in Redis)
    limiter: Any = None  # held here: the limit decorators only keep a weak reference to it


def _sqlite_engine_events(app: Flask) -> None:
    """Embedded SQLite, on this app's engine only (never the Engine class: other apps and
    libraries in the process keep their own behaviour).

    Every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front, so
    concurrent writers queue on ``busy_timeout`` instead of failing. A deferred ``BEGIN``
    that reads and then writes gets SQLITE_BUSY at once in WAL mode when another writer
    committed in between, whatever the timeout (measured: half the preflight submits of
    four simulated operators answered 500). Readers outside a transaction never block (WAL).
    """
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself so SAVEPOINTs work (pysqlite quirk).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        if conn.get_execution_options().get("tenantpilot_read_only"):
            # A reader that never writes (e.g. an artifact streamed chunk by chunk while
            # the request's session holds the write lock): no BEGIN at all, so each
            # SELECT autocommits and, in WAL, never waits for a writer.
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def create_app(config: dict | None = None, plugins: list | None = None) -> Flask:
    """Build an app. ``plugins=None`` loads the ``tenantpilot`` entry-point group; a list
    registers exactly those plugins (tests)."""
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("TENANTPILOT_INSTANCE_PATH") or str(ROOT / "instance")
    app = Flask("tenantpilot", instance_path=instance_path, template_folder=None)
    from .web.inputs import BoundedIntConverter

    # Every <int:…> in every route (plugins' too): ASCII digits within the id column range.
    app.url_map.converters["int"] = BoundedIntConverter
    app.config.update(config_module.from_env(instance_path))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        TEMPLATES_AUTO_RELOAD=False,
        # No form or API body comes near this; a bigger one is refused (413) before parsing.
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.config.update(config or {})
    # Before anything else starts: a PostgreSQL deployment without SECRET_KEY refuses here.
    config_module.settle_secret_key(app.config, instance_path)
    logs.configure(app.config.get("LOG_LEVEL", "INFO"))
    if app.config.get("TENANTPILOT_BEHIND_PROXY", os.environ.get("TENANTPILOT_BEHIND_PROXY")):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    db.init_app(app)
    _sqlite_engine_events(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    _db_commands(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    app.session_interface = PlaneSessionInterface()

    from .queue import connect

    pm = make_plugin_manager(plugins)
    state = TenantPilotState(pm=pm, registry=None, redis=connect(app), embedded=not app.config.get("REDIS_URL"))
    app.extensions["tenantpilot"] = state
    state.registry = build_registry(pm, app)

    _templates(app, pm)
    _blueprints(app, pm)
    _rate_limits(app)
    _request_logging(app)

    from .cli import register_commands

    register_commands(app)
    pm.hook.tenantpilot_register_commands(cli=app.cli)
    return app


def _alembic_version_locations(config):
    """Core chain plus each plugin's own branch (<package>/migrations/versions), so
    `flask db upgrade heads` builds every installed plugin's tables too."""
    from flask import current_app

    from .plugins import plugin_migration_dirs

    dirs = [str(ROOT / "migrations" / "versions")]
    dirs += plugin_migration_dirs(current_app.extensions["tenantpilot"].pm)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(dirs))
    return config


migrate.configure(_alembic_version_locations)  # once: the Migrate object is shared by all apps


def _db_commands(app: Flask) -> None:
    """Each plugin with tables ships its own Alembic branch, so there are several heads;
    `flask db upgrade` (SPEC 10) must build them all, as `flask db upgrade heads` does.
    This app's `db` group is a copy of Flask-Migrate's whose `upgrade` defaults to
    "heads"; the library's own commands are left as they are."""
    import copy

    from flask_migrate.cli import db as library_db
    from flask_migrate.cli import upgrade as library_upgrade

    upgrade = copy.copy(library_upgrade)
    upgrade.params = [copy.copy(p) for p in library_upgrade.params]
    for param in upgrade.params:
        if param.name == "revision":
            param.default = "heads"
    group = copy.copy(library_db)  # keeps its options and callback (they set g.directory)
    group.commands = {**library_db.commands, "upgrade": upgrade}
    app.cli.add_command(group, name="db")


def _templates(app: Flask, pm) -> None:
    """Loader order: instance overrides → plugin templates → core; 'core:' reaches the
    core template even when overridden, so an override can extend the original."""
    core = FileSystemLoader(str(ROOT / "templates"))
    app.jinja_loader = None
    app.jinja_env.loader = ChoiceLoader(
        [FileSystemLoader(str(Path(app.instance_path) / "templates"))]
        + [FileSystemLoader(d) for d in plugin_template_dirs(pm)]
        + [core, PrefixLoader({"core": core}, delimiter=":")]
        # Last: template folders of mounted third-party blueprints (rq-dashboard).
        + [app.create_global_jinja_loader()]
    )
    from . import words
    from .web import filters, locale

    locale.init_app(app)
    filters.register(app)
    words.register(app)


def _blueprints(app: Flask, pm) -> None:
    from .web import admin, errors, public, runbooks_ui, runs_ui, system

    app.register_blueprint(public.bp)
    app.register_blueprint(system.bp, url_prefix="/system")
    app.register_blueprint(runbooks_ui.bp, url_prefix="/system/ops")
    app.register_blueprint(runs_ui.bp, url_prefix="/system/ops")
    from .web import approvals_ui

    app.register_blueprint(approvals_ui.bp, url_prefix="/system/ops")
    from .web import controls_ui

    app.register_blueprint(controls_ui.bp, url_prefix="/system/ops/controls")
    from .web import audit_ui

    app.register_blueprint(audit_ui.bp, url_prefix="/system/audit")
    from .web import lookup

    app.register_blueprint(lookup.bp, url_prefix="/system")
    app.register_blueprint(admin.bp, url_prefix="/admin")
    from .web import tokens_ui

    app.register_blueprint(tokens_ui.system_bp, url_prefix="/system")
    app.register_blueprint(tokens_ui.admin_bp, url_prefix="/admin")
    # rq-dashboard needs app config and the app's Redis connection, and its endpoint names
    # are absolute ("rq_dashboard.static"), so it is mounted here rather than via the hook.
    from .web import rqdash

    rqdash.mount(app)
    _plugin_static(app, pm)
    errors.register(app)
    from .web import apiv1, headers

    headers.init_app(app)
    apiv1.init_app(app, pm)
    for plane, prefix in (("system", "/system"), ("admin", "/admin")):
        for blueprints in pm.hook.tenantpilot_register_blueprints(app=app, plane=plane):
            for bp in blueprints if isinstance(blueprints, (list, tuple)) else [blueprints]:
                app.register_blueprint(bp, url_prefix=prefix + (bp.url_prefix or ""))


@login_manager.unauthorized_handler  # once, at import: it reads the request, not an app
def _unauthorized():
    plane = current_plane() or "admin"
    if request.headers.get("HX-Request"):
        return "Signed out", 401, {"HX-Redirect": url_for(f"{plane}.login")}
    # full_path always ends in "?" when there is no query string: drop it.
    next_url = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for(f"{plane}.login", next=next_url))


def _plugin_static(app: Flask, pm) -> None:
    """Each plugin's ``static/`` folder is served at ``/static/plugins/<package>/``; its
    top-level ``*.css`` and ``*.js`` files are linked in every page's head (base.html), so
    a plugin styles its pages without inline <style> blocks (which the CSP would refuse)."""
    from flask import Blueprint

    from .plugins import plugin_static_dirs

    assets = []
    for package, folder in plugin_static_dirs(pm):
        bp = Blueprint(f"plugin_static_{package}", package, static_folder=folder,
                       static_url_path=f"/static/plugins/{package}")
        app.register_blueprint(bp)
        for path in sorted(Path(folder).iterdir()):
            if path.suffix in (".css", ".js") and path.is_file():
                assets.append({"kind": path.suffix[1:], "endpoint": f"{bp.name}.static", "filename": path.name})
    app.jinja_env.globals["plugin_assets"] = tuple(assets)


def _rate_limits(app: Flask) -> None:
    """One Limiter per app (a module-level one would keep the first app's key prefix).
    Both sign-in forms count failed POSTs only (a sign-in redirects; a failure answers
    422), per (IP, e-mail), per IP and per e-mail from any IP (so rotating addresses does
    not buy more guesses at one account). The 429 carries Retry-After. When the limiter's
    storage (Redis) is unreachable the same limits run in process memory and sign-in
    keeps working."""
    from flask_limiter import Limiter

    from .web.auth import LOGIN_LIMITS

    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    # An empty fallback list makes Flask-Limiter evaluate each route's own limits against
    # in-memory storage while Redis is down (and re-check Redis periodically).
    limiter = Limiter(key_func=lambda: request.remote_addr or "unknown", app=app, default_limits=[],
                      in_memory_fallback_enabled=True, in_memory_fallback=[])
    # With RATELIMIT_ENABLED off, Flask-Limiter registers itself nowhere, and the weak
    # reference its decorators keep would die with this function (every limited view 500).
    app.extensions["tenantpilot"].limiter = limiter
    for endpoint in ("system.login", "admin.login"):
        view = app.view_functions[endpoint]
        for config_key, key_func in LOGIN_LIMITS:
            view = limiter.limit(lambda k=config_key: app.config[k], key_func=key_func, methods=["POST"],
                                 deduct_when=lambda response: response.status_code == 422)(view)
        app.view_functions[endpoint] = view
    # The API: one budget per token across every endpoint of both planes (the token is
    # known by then: web.apiv1 authenticates in an earlier before_request).
    from .web.apiv1 import api_endpoints

    api_limit = limiter.shared_limit(lambda: app.config["TENANTPILOT_API_RATE_LIMIT"], scope="api-token",
                                     key_func=lambda: f"api-token|{g.api_token.id}")
    for endpoint in api_endpoints(app):
        app.view_functions[endpoint] = api_limit(app.view_functions[endpoint])


def _request_logging(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g._started = time.perf_counter()

    @app.after_request
    def _log_request(response):
        started = g.pop("_started", None)
        if started is not None and not request.path.startswith("/static"):
            log.info("request", extra={
                "method": request.method, "path": request.path, "status": response.status_code,
                "plane": current_plane(), "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "run_id": g.get("run_id"),
            })
        return response
