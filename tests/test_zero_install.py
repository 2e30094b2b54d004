"""`make run` on a machine with nothing configured: SQLite + in-process queue. It must
migrate, seed once, serve /system/login and /healthz, and run jobs in the background."""
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_run_serves_with_embedded_defaults(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(TENANTPILOT_INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(port))
    proc = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        health = None
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    health = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert health is not None, "make run never served /healthz"
        assert '"queue":"embedded"' in health.replace(" ", "") and '"database":"ok"' in health.replace(" ", "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/system/login", timeout=5) as resp:
            assert resp.status == 200 and "Platform operator sign-in" in resp.read().decode()
        assert (tmp_path / "instance" / "tenantpilot.sqlite").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    assert "ops@demo.test" in output and "demo-ops-pass" in output  # the demo logins are printed
    assert f"http://127.0.0.1:{port}/" in output


def test_embedded_worker_runs_jobs_in_the_background(make_app, factory):
    """No Redis, no worker process: a started run still completes on its own."""
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope
    from tests.helpers import run_row

    app = make_app(REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)
    f = type(factory)(app)
    f.tenants(f.workspace(), 5)
    with app.app_context():
        run_id = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=Actor.system(),
                            source="cli").run.id
    deadline = time.time() + 30
    while run_row(app, run_id).status != "completed" and time.time() < deadline:
        time.sleep(0.1)
    run = run_row(app, run_id)
    assert (run.status, run.outcome, run.summary_counts["processed"]) == ("completed", "succeeded", 5)
