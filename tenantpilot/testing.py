"""pytest fixtures for TenantPilot and for plugin authors.

Enable in a plugin's tests with ``pytest_plugins = ["tenantpilot.testing"]``. Then:

- ``make_app(plugins=[...], **config)`` builds a throwaway app on a freshly reset database;
- ``app`` / ``client`` are that app (entry-point plugins) and its test client;
- ``drain()`` runs a real RQ worker in burst mode until the queues are empty;
- ``factory`` creates workspaces, tenants and users; ``login(client, plane, email, pw)``
  signs in through the real form (with its CSRF token).

Backends: PostgreSQL and Redis when reachable (``TEST_DATABASE_URL`` / ``TEST_REDIS_URL``,
defaulting to 127.0.0.1 with a database ``tenantpilot_test_<checkout>`` and Redis db 13), else
SQLite and an in-process queue. ``TENANTPILOT_TEST_REQUIRE_REAL=1`` turns a missing
backend into an error instead of a fallback. Each app uses its own queue/key prefix and
cleans only the Redis keys carrying it.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import uuid
from dataclasses import dataclass

import pytest



def _default_pg() -> str:
    """One test database per checkout (named by a hash of its path): two working copies
    on one machine never reset each other's schema."""
    import hashlib
    from pathlib import Path

    tag = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
    return f"postgresql://postgres@127.0.0.1:5432/tenantpilot_test_{tag}"


DEFAULT_PG = _default_pg()
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
_counter = itertools.count()


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


def _pg_reachable(url: str) -> bool:
    import psycopg

    dbname = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                conn.execute(f'CREATE DATABASE "{dbname}"')
        return True
    except Exception:
        return False


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


def detect_backends() -> Backends:
    require = os.environ.get("TENANTPILOT_TEST_REQUIRE_REAL") == "1"
    pg = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    rd = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
    pg_ok = pg not in ("", "sqlite") and _pg_reachable(pg)
    rd_ok = rd not in ("", "none") and _redis_reachable(rd)
    if require and not (pg_ok and rd_ok):
        missing = [name for name, ok in (("PostgreSQL " + _safe(pg), pg_ok), ("Redis " + rd, rd_ok)) if not ok]
        raise pytest.UsageError(f"TENANTPILOT_TEST_REQUIRE_REAL=1 but unreachable: {', '.join(missing)}")
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


def _migrate(app) -> None:
    from flask_migrate import upgrade

    from tenantpilot.extensions import db

    with app.app_context():
        upgrade(revision="heads")
        db.session.remove()
        db.engine.dispose()  # closing the last SQLite connection checkpoints the WAL


@pytest.fixture(scope="session")
def tp_template_db(tmp_path_factory):
    """A migrated database: PostgreSQL schema rebuilt once per session, or a SQLite
    template file copied for every app."""
    from sqlalchemy import create_engine, text

    from tenantpilot.app import create_app

    b = backends()
    if b.database_url:
        url = b.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        _migrate(create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(tmp_path_factory.mktemp("inst"))}))
        return url
    path = tmp_path_factory.mktemp("db") / "template.sqlite"
    _migrate(create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                         "INSTANCE_PATH": str(tmp_path_factory.mktemp("inst"))}))
    return path


def reset_database(app) -> None:
    """Empty every table (PostgreSQL) — TRUNCATE does not fire the audit row triggers."""
    from sqlalchemy import text

    from tenantpilot.extensions import db

    with app.app_context():
        names = [t.name for t in db.metadata.sorted_tables]
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


@pytest.fixture
def make_app(tp_template_db, tmp_path):
    from tenantpilot.app import create_app

    made = []

    def factory(plugins=None, **config):
        b = backends()
        prefix = f"tptest-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"
        if b.database_url:
            db_url = tp_template_db
        else:
            path = tmp_path / "db.sqlite"  # every app of one test shares it, as with PostgreSQL
            if not path.exists():
                shutil.copy(tp_template_db, path)
            db_url = f"sqlite:///{path}"
        settings = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": db_url,
            "REDIS_URL": b.redis_url,
            "TENANTPILOT_QUEUE_PREFIX": prefix,
            "RATELIMIT_STORAGE_URI": b.redis_url or "memory://",
            "RATELIMIT_KEY_PREFIX": f"{prefix}-limiter",
            "TENANTPILOT_EMBEDDED_WORKER": False,  # tests drain the queue explicitly
            "SERVER_NAME": None,
        }
        settings.update(config)
        app = create_app(settings, plugins=plugins)
        if b.database_url and not made:
            reset_database(app)
        made.append(app)
        return app

    yield factory
    for app in made:
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


@pytest.fixture
def drain(app):
    """Run a real RQ worker (burst) over the app's queues until they are empty."""
    from tenantpilot.queue import make_worker

    def run(target=None):
        target = target or app
        worker = make_worker(target, thread=True)
        worker.work(burst=True, logging_level="WARNING")
        return worker

    return run


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    m = CSRF_RE.search(html)
    if not m:
        raise AssertionError("no csrf_token field in page")
    return m.group(1) or m.group(2)


def login(client, plane: str, email: str, password: str):
    """Sign in through the real login form of a plane; returns the POST response."""
    page = client.get(f"/{plane}/login")
    return client.post(f"/{plane}/login", data={"email": email, "password": password,
                                                 "csrf_token": csrf_from(page.get_data(as_text=True))})


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
