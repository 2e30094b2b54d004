"""The test kit for TenantPilot and its plugins: a pytest plugin, loaded automatically
wherever tenantpilot-ops is installed (entry point ``pytest11``); no ``pytest_plugins`` line.

Fixtures: ``make_app(plugins=[...], **config)`` (a throwaway app on a freshly reset database,
with the migrations of the plugins passed in applied, installed or not), ``app``,
``client``, ``drain``, ``factory`` and ``clock`` (the app's clock, moved by hand).
Functions: ``signed_in``, ``api_client``, ``post_form``, ``form_fields``, ``wait_for_run``, ``run_cli``,
``check_migrations``, ``login``, ``csrf_from``. docs/plugins.md "Testing plugins" says more.

Backends: safe by default. A temporary SQLite file and an in-process queue (fakeredis),
unless ``TEST_DATABASE_URL`` names a PostgreSQL database (its ``public`` schema is dropped
and rebuilt once per session) and ``TEST_REDIS_URL`` a Redis database (only keys carrying
a test app's own prefix are deleted). A named backend that is unreachable falls back,
unless ``TENANTPILOT_TEST_REQUIRE_REAL=1``, which makes a missing or unreachable one an error.
"""
from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

_counter = itertools.count()
CORE_MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations" / "versions")


@dataclass(frozen=True)
class Backends:
    database_url: str | None  # None: SQLite
    redis_url: str | None  # None: in-process queue

    def describe(self) -> str:
        db = f"PostgreSQL ({_safe(self.database_url)})" if self.database_url else "SQLite (temporary file)"
        q = f"Redis ({self.redis_url})" if self.redis_url else "in-process queue (fakeredis)"
        return f"tenantpilot test backends: database={db}; queue={q}"


def _safe(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//", url)


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0].replace("+psycopg", "") + "/postgres"


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def _pg_reachable(url: str) -> bool:
    """Reachable, creating the named database if it is missing."""
    import psycopg

    try:
        with psycopg.connect(_admin_url(url), autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_db_name(url),)).fetchone():
                conn.execute(f'CREATE DATABASE "{_db_name(url)}"')
        return True
    except Exception:
        return False


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


def _named(variable: str, off: str) -> str:
    value = os.environ.get(variable, "").strip()
    return "" if value.lower() == off else value


def detect_backends() -> Backends:
    """Only what the environment names: a plugin author's run never touches a database
    it was not pointed at (a guessed default could be another suite's)."""
    require = os.environ.get("TENANTPILOT_TEST_REQUIRE_REAL") == "1"
    pg = _named("TEST_DATABASE_URL", "sqlite")
    rd = _named("TEST_REDIS_URL", "none")
    if pg and not pg.startswith("postgresql"):
        raise pytest.UsageError(f"TEST_DATABASE_URL must name a PostgreSQL database (postgresql://…), not {_safe(pg)}")
    pg_ok = bool(pg) and _pg_reachable(pg)
    rd_ok = bool(rd) and _redis_reachable(rd)
    if require and not (pg_ok and rd_ok):
        missing = [f"{name} ({_safe(url) + ' unreachable' if url else 'not set'})"
                   for name, url, ok in (("TEST_DATABASE_URL", pg, pg_ok), ("TEST_REDIS_URL", rd, rd_ok)) if not ok]
        raise pytest.UsageError(f"TENANTPILOT_TEST_REQUIRE_REAL=1 but no real backend: {', '.join(missing)}")
    return Backends(pg if pg_ok else None, rd if rd_ok else None)


_BACKENDS: Backends | None = None


def backends() -> Backends:
    global _BACKENDS
    if _BACKENDS is None:
        _BACKENDS = detect_backends()
    return _BACKENDS


def pytest_sessionstart(session):
    backends()  # decide (or refuse) once, before any test runs


def pytest_report_header(config):
    return backends().describe()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(backends().describe())


# --- databases and migrations ----------------------------------------------------------

def _upgrade(app, version_dirs: list[str]) -> None:
    """``upgrade heads`` over exactly these version folders: the core chain plus every
    plugin branch the database has seen (Alembic refuses a recorded revision it cannot find)."""
    from alembic import command

    from tenantpilot.extensions import db

    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        config.set_main_option("version_locations", os.pathsep.join(version_dirs))
        command.upgrade(config, "heads")
        db.session.remove()
        db.engine.dispose()  # closing the last SQLite connection checkpoints the WAL


def _migration_dirs(app) -> list[str]:
    from tenantpilot.plugins import plugin_migration_dirs

    return [CORE_MIGRATIONS] + plugin_migration_dirs(app.extensions["tenantpilot"].pm)


def _inert_config(tmp: Path, database_url: str) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": database_url, "INSTANCE_PATH": str(tmp / "instance"), "REDIS_URL": None,
            "SECRET_KEY": "inert", "RATELIMIT_STORAGE_URI": "memory://", "TENANTPILOT_EMBEDDED_WORKER": False}


def _pg_drop_schema(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@dataclass
class TemplateDb:
    """The session's migrated database (installed plugins' branches): the PostgreSQL test
    database itself, or a SQLite file copied for every test."""

    location: str  # a SQLAlchemy URL (PostgreSQL) or a file path (SQLite)
    migration_dirs: list[str]
    tmp: Path
    dirty: bool = False  # PostgreSQL: a test added plugin tables; rebuild before the next one

    def build(self) -> None:
        from tenantpilot.app import create_app

        url = self.location
        if url.startswith("postgresql"):
            _pg_drop_schema(url)
        else:
            url = f"sqlite:///{self.location}"
        app = create_app(_inert_config(self.tmp, url))
        self.migration_dirs = _migration_dirs(app)
        _upgrade(app, self.migration_dirs)
        self.dirty = False


@pytest.fixture(scope="session")
def tp_template_db(tmp_path_factory):
    b = backends()
    tmp = tmp_path_factory.mktemp("template")
    if b.database_url:
        location = b.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        location = str(tmp / "template.sqlite")
    template = TemplateDb(location, [], tmp)
    template.build()
    return template


def reset_database(app) -> None:
    """Empty every table the database has (PostgreSQL), whichever plugins made it.
    TRUNCATE does not fire the audit row triggers."""
    from sqlalchemy import inspect, text

    from tenantpilot.extensions import db

    with app.app_context():
        names = [f'"{n}"' for n in inspect(db.engine).get_table_names() if n != "alembic_version"]
        db.session.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        db.session.commit()


def cleanup_redis(app) -> None:
    """Delete only keys carrying this app's unique prefix (queues, jobs, limiter)."""
    import redis

    try:
        _cleanup_redis(app)
    except redis.ConnectionError:
        pass  # an app pointed at an unreachable Redis on purpose has nothing to clean


def _cleanup_redis(app) -> None:
    state = app.extensions["tenantpilot"]
    prefix = app.config["TENANTPILOT_QUEUE_PREFIX"]
    r = state.redis
    for key in r.scan_iter(match=f"*{prefix}*", count=1000):
        r.delete(key)
    # RQ's global index sets name our queues and workers without our prefix in the key.
    index_sets = ("rq:queues", "rq:workers") + tuple(
        k.decode() if isinstance(k, bytes) else k for k in r.scan_iter(match="rq:workers:*"))
    for key in index_sets:
        for member in r.smembers(key):
            if prefix in (member.decode() if isinstance(member, bytes) else member):
                r.srem(key, member)


@dataclass
class _TestDb:
    """One test's database: every app the test makes shares it, as with PostgreSQL."""

    url: str
    migration_dirs: list[str]
    apps: list = field(default_factory=list)


@pytest.fixture
def make_app(tp_template_db, tmp_path):
    from tenantpilot.app import create_app

    b = backends()
    test_db: _TestDb | None = None

    def factory(plugins=None, **config):
        nonlocal test_db
        if test_db is None:
            if tp_template_db.dirty:
                tp_template_db.build()
            if b.database_url:
                url = tp_template_db.location
            else:
                path = tmp_path / "db.sqlite"
                shutil.copy(tp_template_db.location, path)
                url = f"sqlite:///{path}"
            test_db = _TestDb(url, list(tp_template_db.migration_dirs))
        prefix = f"tptest-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"
        settings = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": test_db.url,
            "REDIS_URL": b.redis_url,
            "TENANTPILOT_QUEUE_PREFIX": prefix,
            "RATELIMIT_STORAGE_URI": b.redis_url or "memory://",
            "RATELIMIT_KEY_PREFIX": f"{prefix}-limiter",
            "TENANTPILOT_EMBEDDED_WORKER": False,  # tests drain the queue explicitly
            "SERVER_NAME": None,
        }
        settings.update(config)
        app = create_app(settings, plugins=plugins)
        if b.database_url and not test_db.apps:
            reset_database(app)
        # Branches of plugins passed in but not installed (so not in the template).
        new = [d for d in _migration_dirs(app) if d not in test_db.migration_dirs]
        if new:
            test_db.migration_dirs += new
            _upgrade(app, test_db.migration_dirs)
            tp_template_db.dirty = bool(b.database_url)  # the shared schema has tables it should not
        test_db.apps.append(app)
        return app

    yield factory
    for app in test_db.apps if test_db else []:
        cleanup_redis(app)
        with app.app_context():
            from tenantpilot.extensions import db

            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def drain_queues(app):
    """Run a real RQ worker (burst) over the app's queues until they are empty."""
    from tenantpilot.queue import make_worker

    worker = make_worker(app, thread=True)
    worker.work(burst=True, logging_level="WARNING")
    return worker


@pytest.fixture
def drain(app):
    """``drain(target=None)``: ``drain_queues`` for the test's app (or ``target``)."""
    return lambda target=None: drain_queues(target or app)


class Clock:
    """The app's clock in a test (``tenantpilot.timeutil``): starts at the real time and
    moves only when told. ``clock()`` is its time, naive UTC."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime.now(timezone.utc).replace(tzinfo=None)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **delta) -> datetime:
        """Move forward by ``seconds`` (and/or ``timedelta`` keywords: ``minutes=5``)."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


@pytest.fixture
def clock():
    """Installs a ``Clock`` for the whole process (worker threads included) for one test."""
    from tenantpilot import timeutil

    fake = Clock()
    previous = timeutil.set_clock(fake)
    yield fake
    timeutil.set_clock(previous)


# --- acting as a person ------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
# What Factory.user / Factory.platform_user give an account unless told otherwise.
DEFAULT_PASSWORDS = {"admin": "user-pass-123", "system": "platform-pass-123"}


def csrf_from(html: str) -> str:
    m = CSRF_RE.search(html)
    if not m:
        raise AssertionError("no csrf_token field in page")
    return m.group(1) or m.group(2)


def csrf_token(client, page: str) -> str:
    """The session's CSRF token, read from ``page`` (for a test that builds or tampers
    with the form data itself; ``post_form`` otherwise)."""
    return csrf_from(client.get(page).get_data(as_text=True))


def login(client, plane: str, email: str, password: str):
    """Sign in through the real login form of a plane; returns the POST response."""
    page = client.get(f"/{plane}/login")
    return client.post(f"/{plane}/login", data={"email": email, "password": password,
                                                 "csrf_token": csrf_from(page.get_data(as_text=True))})


def signed_in(app, plane: str, email: str, password: str | None = None):
    """A new test client of ``app``, signed in on ``plane`` ("system" or "admin") through
    the real form. ``password`` defaults to the factory's default for that plane."""
    client = app.test_client()
    resp = login(client, plane, email, password or DEFAULT_PASSWORDS[plane])
    assert resp.status_code == 302, f"{email} could not sign in on /{plane} (HTTP {resp.status_code})"
    return client


class ApiClient:
    """A test client of one plane's API that sends ``Authorization: Bearer <secret>``
    on every request (``get``/``post``/…, as Flask's test client; ``json=`` bodies)."""

    def __init__(self, app, secret: str, token_id: int):
        self.app, self.token, self.token_id = app, secret, token_id
        self._client = app.test_client()

    def open(self, *args, headers=None, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return self._client.open(*args, headers=headers, **kwargs)

    def get(self, *a, **kw):
        return self.open(*a, method="GET", **kw)

    def post(self, *a, **kw):
        return self.open(*a, method="POST", **kw)

    def put(self, *a, **kw):
        return self.open(*a, method="PUT", **kw)

    def delete(self, *a, **kw):
        return self.open(*a, method="DELETE", **kw)


def api_client(app, plane: str, email: str, capabilities=None, days: int = 90, name: str = "test token") -> ApiClient:
    """An ``ApiClient`` with a new API token of the person ``email`` on ``plane``
    ("system" or "admin"): by default every capability the person holds."""
    from sqlalchemy import select

    from . import tokens
    from .actors import Actor
    from .extensions import db

    with app.app_context():
        model = tokens.owner_model(plane)
        user = db.session.execute(select(model).filter_by(email=email)).scalar_one()
        caps = sorted(tokens.held_capabilities(plane, user)) if capabilities is None else list(capabilities)
        row, secret = tokens.create(plane, user, name, caps, days, tokens.owner_actor(plane, user) if user else Actor.system())
        return ApiClient(app, secret, row.id)


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []  # {"action": …, "hidden": {name: value}}
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._open = {"action": a.get("action") or a.get("hx-post") or "", "hidden": {}}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and (a.get("type") or "").lower() == "hidden" and a.get("name"):
            self._open["hidden"].setdefault(a["name"], a.get("value") or "")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def form_fields(html: str, action: str, page_url: str = "") -> dict:
    """The hidden fields a browser would send with the page's form that posts to
    ``action`` (CSRF token, idempotency token, preflight id…). A page without such a form
    (a button elsewhere) gives its CSRF token alone: the token belongs to the session."""
    parser = _Forms()
    parser.feed(html)
    target = urlsplit(action).path
    for form in parser.forms:
        if urlsplit(form["action"] or page_url).path == target and "csrf_token" in form["hidden"]:
            return dict(form["hidden"])
    return {"csrf_token": csrf_from(html)}


def post_form(client, url: str, data: dict | None = None, *, page: str | None = None, **kwargs):
    """GET ``page`` (default: ``url`` itself), then POST ``data`` to ``url`` with that
    form's hidden fields (``form_fields``); ``data`` wins over them. ``kwargs`` go to
    ``client.post`` (``headers=``, ``follow_redirects=``)."""
    page = page or url
    resp = client.get(page)
    assert resp.status_code == 200, f"GET {page} answered {resp.status_code}: pass page= the page with the form"
    fields = form_fields(resp.get_data(as_text=True), url, page)
    return client.post(url, data={**fields, **(data or {})}, **kwargs)


# --- runs, commands, migrations ----------------------------------------------------------

def wait_for_run(app, run_id: int, rounds: int = 20):
    """Run the app's queued work until run ``run_id`` is no longer queued or running;
    returns the run (detached). Fails when it is still active with nothing left to run."""
    from tenantpilot.extensions import db
    from tenantpilot.models import OperationRun
    from tenantpilot.queue import all_queues

    for _ in range(rounds):
        drain_queues(app)
        with app.app_context():
            run = db.session.get(OperationRun, run_id)
            assert run is not None, f"no run {run_id}"
            db.session.expunge(run)
            if not run.is_active:
                return run
            if not sum(q.count for q in all_queues(app)):
                break
    raise AssertionError(f"run {run_id} is still {run.status} with nothing left to run")


def run_cli(app, args, **kwargs):
    """Invoke a ``flask`` command of ``app`` (``args``: a list, or a string split like a
    shell); returns click's ``Result`` (``exit_code``, ``output``)."""
    return app.test_cli_runner().invoke(args=shlex.split(args) if isinstance(args, str) else list(args), **kwargs)


def _package(plugin) -> str:
    name = plugin.__name__ if isinstance(plugin, ModuleType) else getattr(plugin, "__module__", type(plugin).__module__)
    return name.split(".")[0]


def migration_diff(app) -> list:
    """What Alembic's autogenerate finds between the models of the core and of ``app``'s
    plugins and a scratch database built by their migrations alone (same backend as
    the tests; a table no model describes counts too)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tenantpilot.app import create_app
    from tenantpilot.extensions import db
    from tenantpilot.plugins import DEFAULT_PLUGINS

    pm = app.extensions["tenantpilot"].pm
    plugins = [(name, p) for name, p in pm.list_name_plugin() if name not in DEFAULT_PLUGINS]
    packages = {"tenantpilot"} | {_package(p) for _, p in plugins}
    owned = {t.name for m in db.Model.registry.mappers if m.class_.__module__.split(".")[0] in packages
             for t in m.tables}

    def include(obj, name, type_, reflected, compare_to):
        # Models of plugins this app does not load are no business of its migrations.
        return type_ != "table" or name in owned or (reflected and compare_to is None)

    with tempfile.TemporaryDirectory() as tmp, _scratch_database(Path(tmp)) as config:
        scratch = create_app({**config, "TESTING": True, "SECRET_KEY": "check"}, plugins=plugins)
        _upgrade(scratch, _migration_dirs(scratch))
        with scratch.app_context():
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": include}),
                                        db.metadata)
            db.engine.dispose()
    return diff


def check_migrations(app) -> None:
    """Fail unless the migrations of the core and of ``app``'s plugins build exactly the
    tables their models describe (``migration_diff`` is empty)."""
    diff = migration_diff(app)
    assert not diff, "migrations and models differ:\n" + "\n".join(map(repr, diff))


class _scratch_database:
    """An empty database for one check: a schema of its own in the PostgreSQL test
    database (first on the search path, dropped after), else a SQLite file in ``tmp``.
    Yields the app config that points there."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pg = backends().database_url

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.pg, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql)

    def __enter__(self) -> dict:
        if not self.pg:
            return _inert_config(self.tmp, f"sqlite:///{self.tmp / 'check.sqlite'}")
        self.schema = f"tp_check_{uuid.uuid4().hex[:8]}"
        self._execute(f'CREATE SCHEMA "{self.schema}"')
        url = self.pg.replace("postgresql://", "postgresql+psycopg://", 1)
        return {**_inert_config(self.tmp, url),
                "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={self.schema}"}}}

    def __exit__(self, *exc):
        if self.pg:
            self._execute(f'DROP SCHEMA "{self.schema}" CASCADE')


class Factory:
    """Creates identity rows for tests. Each call runs in its own app context and returns
    loaded, detached objects (a context held across a test would leak ``g`` and the
    session into the client's requests)."""

    def __init__(self, app):
        self.app = app
        self.n = itertools.count(1)

    def _save(self, *objs):
        from tenantpilot.extensions import db

        db.session.add_all(objs)
        db.session.commit()
        for obj in objs:
            db.session.refresh(obj)
            db.session.expunge(obj)
        return objs[0]

    def workspace(self, name=None):
        from tenantpilot.models import Workspace

        with self.app.app_context():
            i = next(self.n)
            return self._save(Workspace(name=name or f"Workspace {i}", slug=f"ws-{i}-{uuid.uuid4().hex[:6]}"))

    def tenant(self, workspace, name=None, **kw):
        from tenantpilot.models import Tenant

        with self.app.app_context():
            i = next(self.n)
            return self._save(Tenant(workspace_id=workspace.id, name=name or f"Tenant {i}",
                                     external_id=kw.pop("external_id", str(uuid.uuid4())), **kw))

    def tenants(self, workspace, count: int) -> list[int]:
        from sqlalchemy import insert, select

        from tenantpilot.extensions import db
        from tenantpilot.models import Tenant

        with self.app.app_context():
            db.session.execute(insert(Tenant), [
                {"workspace_id": workspace.id, "name": f"Bulk tenant {i}", "external_id": str(uuid.uuid4()),
                 "status": "active", "is_platform": False} for i in range(count)])
            db.session.commit()
            return list(db.session.scalars(
                select(Tenant.id).where(Tenant.workspace_id == workspace.id).order_by(Tenant.id)))

    def user(self, email=None, password="user-pass-123", memberships=()):
        from tenantpilot.extensions import db
        from tenantpilot.models import Membership, User

        with self.app.app_context():
            i = next(self.n)
            u = User(email=email or f"user{i}@example.test", name=f"User {i}")
            u.set_password(password)
            db.session.add(u)
            db.session.flush()
            for ws, role in memberships:
                db.session.add(Membership(user_id=u.id, workspace_id=ws.id, role=role))
            return self._save(u)

    def platform_user(self, email=None, password="platform-pass-123", capabilities=None):
        from tenantpilot.models import PlatformUser

        with self.app.app_context():
            i = next(self.n)
            caps = (list(self.app.extensions["tenantpilot"].registry.platform_capabilities)
                    if capabilities is None else capabilities)
            u = PlatformUser(email=email or f"ops{i}@example.test", name=f"Operator {i}", capabilities=caps)
            u.set_password(password)
            return self._save(u)


@pytest.fixture
def factory(app):
    return Factory(app)


# --- what tests may read and drive beyond tenantpilot.sdk ------------------------------
# Plugin tests import the core through tenantpilot.sdk, tenantpilot.api and this module
# only (tests/test_sdk_surface.py). These are the test-side extras: rows to assert on
# and the background duties a test runs by hand.

def __getattr__(name):
    # Models a test reads to check what the core recorded (lazy: importing the kit must
    # not import the app's models before pytest configured the session).
    if name in ("ProductUsageEvent", "OperationalControlActivation", "Notification", "OutboxMessage"):
        from tenantpilot import models

        return getattr(models, name)
    if name == "tenant_universe":  # which tenants a run of a scope would take
        from tenantpilot.runs import tenant_universe

        return tenant_universe
    raise AttributeError(name)


def run_scheduled(app) -> list[str]:
    """Run the scheduled jobs that are due now (the scheduler's one tick); their names."""
    from tenantpilot import scheduler

    return scheduler.run_due(app)


def spooled(kind: str = "telemetry") -> int:
    """Records of ``kind`` ("telemetry", "audit") waiting in the spool for the replay job."""
    from tenantpilot import spool

    return spool.pending(kind)


def replay_spooled_telemetry() -> int:
    """Write the spooled telemetry events now (the scheduled replay); how many."""
    from tenantpilot import telemetry

    return telemetry.replay_spool()


def migration_dirs(app) -> list[str]:
    """The Alembic version folders of the core and of each plugin of ``app``."""
    return _migration_dirs(app)
