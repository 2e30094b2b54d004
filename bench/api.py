"""API latency and throughput.

(a) Start latency: POST /system/api/v1/runbooks/<key>/start beside the page's confirm
    POST (/system/ops/runbooks/<key>/confirm), measured in the same run, alternating, one
    request at a time through the Flask test client (the whole request: token or session
    check, preflight load, confirmation checks, drift check, the start seam, enqueue,
    audit). Each start has its own fresh preflight (made through the same surface, not
    timed) on its own tenant of the canary runbook, so every start creates a run (no
    dedup, no scope lock) and no worker is needed. ``REPS`` repetitions of ``N`` starts
    per surface; medians and the spread (min–max) of the repetitions' figures.

(b) Throughput: GET /system/api/v1/runs (first page) with 2 gunicorn workers, the
    Procfile's settings (``--workers 2 --threads 4``, access log on), on PostgreSQL with
    ``RUNS`` runs, driven by wrk (a Lua script sends the bearer token and reports
    p50/p95/p99), beside a bare Flask "hello" app under the same gunicorn settings,
    measured in the same run, alternating. The API's per-token rate limit is raised for
    the bench (its Redis check stays in the path). Skipped, with a note, when the app has
    no runs endpoint.

Backends: BENCH_DATABASE_URL / BENCH_REDIS_URL (see _common.py); the database's public
schema is dropped and rebuilt.

Run from the repository root with the venv active:  python bench/api.py
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from _common import (DATABASE_URL, OPERATION, REDIS_URL, _libpq_url, checks_verdict, percentile, print_header,
                     setup, teardown)

ROOT = Path(__file__).resolve().parent.parent
N = 60            # starts per surface per repetition
REPS = 3
WARMUP = 5        # per surface, not counted
RUNS = 5000       # rows in operation_runs for (b)
WRK_SECONDS = 10
WRK_THREADS, WRK_CONNECTIONS = 2, 16
RUNS_PATH = os.environ.get("BENCH_API_PATH", "/system/api/v1/runs")
EMAIL, PASSWORD = "bench-ops@bench.test", "bench-pass-123"

WRK_LUA = """
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") or ""
function done(summary, latency, requests)
  io.write(string.format('WRK {"requests": %d, "seconds": %.3f, "non2xx": %d, "errors": %d, '
    .. '"p50": %d, "p95": %d, "p99": %d}\\n', summary.requests, summary.duration / 1e6,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
HELLO_APP = '''
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello"
'''


def spread(values: list[float], fmt=lambda v: f"{v:.2f}") -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


# --- (a) start latency ------------------------------------------------------------------

def seed_people(app) -> tuple:
    from tenantpilot import tokens
    from tenantpilot.extensions import db
    from tenantpilot.models import PlatformUser

    with app.app_context():
        caps = list(app.extensions["tenantpilot"].registry.platform_capabilities)
        user = PlatformUser(email=EMAIL, name="Bench Ops", capabilities=caps)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        _row, secret = tokens.create("system", user, "bench", caps, 30, tokens.owner_actor("system", user))
        return secret


def api_start(client, auth: dict, tenant_id: int) -> float:
    r = client.post(f"/system/api/v1/runbooks/{OPERATION}/preflight", headers=auth,
                    json={"scope": {"kind": "single_tenant", "tenant_id": tenant_id}})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = {"preflight_id": r.get_json()["preflight_id"], "confirmation": "CANARY", "reason_code": "SUPPORT",
            "reason_text": ""}
    t0 = time.perf_counter()
    r = client.post(f"/system/api/v1/runbooks/{OPERATION}/start", headers=auth, json=body)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 201 and r.get_json()["status"] == "started", r.get_data(as_text=True)
    return elapsed


def page_start(client, tenant_id: int) -> float:
    from tenantpilot.testing import csrf_from, form_fields

    url = f"/system/ops/runbooks/{OPERATION}/preflight"
    page = client.get(url).get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf_from(page), "kind": "single_tenant", "tenant_id": tenant_id})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    location = r.headers["Location"]
    confirm_url = f"/system/ops/runbooks/{OPERATION}/confirm"
    fields = form_fields(client.get(location).get_data(as_text=True), confirm_url, location)
    fields.update({"confirmation": "CANARY", "reason_code": "SUPPORT", "reason_text": ""})
    t0 = time.perf_counter()
    r = client.post(confirm_url, data=fields)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 302 and "/system/ops/runs/" in r.headers["Location"], r.get_data(as_text=True)[:2000]
    return elapsed


def start_latency(app, secret: str, tenant_ids: list[int]) -> dict:
    from tenantpilot.testing import login

    auth = {"Authorization": f"Bearer {secret}"}
    api_client, page_client = app.test_client(), app.test_client()
    assert login(page_client, "system", EMAIL, PASSWORD).status_code == 302
    tenants = iter(tenant_ids)
    for _ in range(WARMUP):
        api_start(api_client, auth, next(tenants))
        page_start(page_client, next(tenants))
    reps = {"api": [], "page": []}
    for _rep in range(REPS):
        samples = {"api": [], "page": []}
        for _ in range(N):  # alternating, so drift in the machine hits both alike
            samples["api"].append(api_start(api_client, auth, next(tenants)))
            samples["page"].append(page_start(page_client, next(tenants)))
        for surface, values in samples.items():
            reps[surface].append({"median": statistics.median(values), "p95": percentile(values, 95)})
    return reps


# --- (b) throughput ---------------------------------------------------------------------

def load_runs(tenant_ids: list[int], workspace_id: int) -> int:
    """RUNS completed canary runs (single-tenant and workspace scope), bulk-inserted."""
    with psycopg.connect(_libpq_url(DATABASE_URL)) as conn:
        conn.execute("""
INSERT INTO operation_runs (workspace_id, tenant_id, type, status, outcome, initiator_name, run_identity_hash,
  summary_counts, failure_summary, context, tenants_total, tenants_done, tenants_failed, tenants_skipped,
  cancel_requested, created_at, started_at, completed_at)
SELECT %(ws)s, CASE WHEN i %% 3 = 0 THEN NULL ELSE (%(tids)s::int[])[1 + i %% %(nt)s] END,
  %(op)s, 'completed', CASE WHEN i %% 17 = 0 THEN 'failed' ELSE 'succeeded' END, 'Bench Ops',
  md5(i::text) || md5((-i)::text), '{"processed": 1}'::json, '[]'::json,
  json_build_object('operation_label', 'Pipeline canary', 'source', 'api',
                    'scope', json_build_object('kind', CASE WHEN i %% 3 = 0 THEN 'workspace' ELSE 'single_tenant' END)),
  1, 1, CASE WHEN i %% 17 = 0 THEN 1 ELSE 0 END, 0, false,
  now() - (%(n)s - i) * interval '1 minute', now() - (%(n)s - i) * interval '1 minute',
  now() - (%(n)s - i) * interval '1 minute' + interval '5 seconds'
FROM generate_series(1, %(n)s) AS i
""", {"ws": workspace_id, "tids": tenant_ids, "nt": len(tenant_ids), "op": OPERATION, "n": RUNS})
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE operation_runs")
        return conn.execute("SELECT count(*) FROM operation_runs").fetchone()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn with the Procfile's web settings on a free loopback port."""

    def __init__(self, target: str, env: dict, cwd: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--threads", "4", "--access-logfile", "-", target],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, headers: dict, timeout: float = 60) -> int:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return httpx.get(self.base + path, headers=headers, timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn on {self.base} did not answer within {timeout}s")

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def wrk(url: str, lua: Path, auth: str = "") -> dict:
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s", "-s", str(lua),
                          url], capture_output=True, text=True, env={**os.environ, "BENCH_AUTH": auth}, check=True)
    m = re.search(r"^WRK (\{.*\})$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    result = json.loads(m.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    return result


def throughput(config: dict, secret: str) -> dict | None:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    work = Path(tempfile.mkdtemp(prefix="tpbench-api-"))
    (work / "hello_app.py").write_text(HELLO_APP)
    lua = work / "auth.lua"
    lua.write_text(WRK_LUA)
    env = {**os.environ, "DATABASE_URL": _libpq_url(DATABASE_URL), "REDIS_URL": REDIS_URL,
           "SECRET_KEY": config["SECRET_KEY"], "TENANTPILOT_QUEUE_PREFIX": config["TENANTPILOT_QUEUE_PREFIX"],
           "TENANTPILOT_INSTANCE_PATH": config["INSTANCE_PATH"], "TENANTPILOT_EMBEDDED_WORKER": "0",
           "TENANTPILOT_API_RATE_LIMIT": "100000000 per minute", "PYTHONPATH": str(ROOT)}
    auth = f"Bearer {secret}"
    api = Gunicorn("wsgi:app", env, ROOT)
    hello = Gunicorn("hello_app:app", {**os.environ, "PYTHONPATH": str(work)}, work)
    try:
        status = api.wait_ready(RUNS_PATH, {"Authorization": auth})
        hello.wait_ready("/", {})
        if status != 200:
            return {"skipped": f"GET {RUNS_PATH} answers {status} (no runs endpoint in this tree yet)"}
        wrk(api.base + RUNS_PATH, lua, auth)  # warm-up: connection pools, caches, both workers
        wrk(hello.base + "/", lua)
        reps = {"api": [], "hello": []}
        for _ in range(REPS):
            reps["api"].append(wrk(api.base + RUNS_PATH, lua, auth))
            reps["hello"].append(wrk(hello.base + "/", lua))
        return reps
    finally:
        api.stop()
        hello.stop()


def main() -> int:
    print_header("bench/api.py — API start latency and runs-list throughput",
                 f"(a) {REPS}×{N} starts per surface (API vs confirm page); (b) wrk on GET {RUNS_PATH}, "
                 f"2 gunicorn workers, {RUNS} runs, vs a bare Flask app")
    began = time.monotonic()
    app, config, tenant_ids = setup(2 * (WARMUP + REPS * N) + 10)
    try:
        secret = seed_people(app)
        with app.app_context():
            from tenantpilot.extensions import db
            from tenantpilot.models import Tenant

            workspace_id = db.session.get(Tenant, tenant_ids[0]).workspace_id

        reps = start_latency(app, secret, tenant_ids)
        print(f"(a) start latency, ms: median of {REPS} repetitions (min–max), each of {N} starts")
        print(f"{'surface':<44} {'median':>22} {'p95':>22}")
        for surface, label in (("api", f"POST /system/api/v1/runbooks/{OPERATION}/start"),
                               ("page", f"POST /system/ops/runbooks/{OPERATION}/confirm")):
            print(f"{label:<44} {spread([r['median'] * 1000 for r in reps[surface]]):>22} "
                  f"{spread([r['p95'] * 1000 for r in reps[surface]]):>22}")
        print()

        total = load_runs(tenant_ids, workspace_id)
        result = throughput(config, secret)
        print(f"(b) throughput: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, {REPS} repetitions, "
              f"median (min–max); {total} runs in the table")
        if "skipped" in result:
            print(f"    skipped: {result['skipped']}")
        else:
            print(f"{'target':<44} {'req/s':>22} {'p50 ms':>18} {'p95 ms':>18} {'p99 ms':>18} {'non-2xx':>8}")
            for key, label in (("api", f"GET {RUNS_PATH}"), ("hello", "bare Flask hello (same gunicorn)")):
                rs = result[key]
                lat = {p: spread([r[p] / 1000 for r in rs], lambda v: f"{v:.1f}") for p in ("p50", "p95", "p99")}
                print(f"{label:<44} {spread([r['rps'] for r in rs], lambda v: f'{v:.0f}'):>22} {lat['p50']:>18} "
                      f"{lat['p95']:>18} {lat['p99']:>18} {sum(r['non2xx'] + r['errors'] for r in rs):>8}")
        print()
        # Every timed request answered 2xx (the starts are asserted as they go).
        ok = "skipped" in result or all(r["non2xx"] + r["errors"] == 0 for rs in result.values() for r in rs)
        return checks_verdict(ok, began)
    finally:
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
