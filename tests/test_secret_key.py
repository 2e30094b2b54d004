"""SECRET_KEY on a multi-process deployment (issue 17): with PostgreSQL every process must be
given the same key, so a process started without one refuses, naming what to set; the
zero-install default (SQLite, a generated key in the instance folder) keeps working.

Each case starts the real entry point (wsgi.py, gunicorn as the Procfile runs it) in a
subprocess with a clean environment. The PostgreSQL URL is never connected to at startup,
so these run the same whatever backends the suite uses."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL = "postgresql://tenantpilot@127.0.0.1:1/not_connected_at_startup"
IMPORT = [sys.executable, "-c", "from wsgi import app; print('key=' + app.secret_key)"]


def environment(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    return {**env, "TENANTPILOT_INSTANCE_PATH": str(tmp_path / "instance"), **extra}


def run(args, env, timeout=120):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_postgresql_without_secret_key_refuses_to_start_with_a_clear_message(tmp_path):
    done = run(IMPORT, environment(tmp_path, DATABASE_URL=PG_URL))
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr and "every process" in done.stderr
    assert not (tmp_path / "instance" / "secret_key").exists()  # no per-process key was made up


def test_postgresql_with_secret_key_starts_with_that_key(tmp_path):
    done = run(IMPORT, environment(tmp_path, DATABASE_URL=PG_URL, SECRET_KEY="the-shared-key"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("key=the-shared-key")


def test_the_procfile_web_process_refuses_too(tmp_path):
    """gunicorn as the Procfile runs it: the master gives up ("Worker failed to boot")
    instead of respawning workers forever, and the log says why."""
    env = environment(tmp_path, DATABASE_URL=PG_URL, WEB_CONCURRENCY="1")
    done = run([str(BIN / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", "1", "wsgi:app"], env, timeout=60)
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_sqlite_default_keeps_a_generated_key_in_the_instance_folder(tmp_path):
    env = environment(tmp_path)
    first = run(IMPORT, env)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "instance" / "secret_key").read_text().strip()
    assert len(key) == 64 and first.stdout.strip().endswith(f"key={key}")
    second = run(IMPORT, env)  # a restart signs with the same key
    assert second.returncode == 0 and second.stdout.strip().endswith(f"key={key}")
