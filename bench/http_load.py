"""Signed-in pages under the real gunicorn, driven by a real load tool, beside the ceiling.

What runs: the Procfile's own ``web:`` command (read from ./Procfile, so the bench moves
with it: gunicorn, WEB_CONCURRENCY=2 workers × 4 threads, access log on) serving wsgi:app
on PostgreSQL + Redis, and the same gunicorn command serving a bare Flask "hello" app
(bench/_hello.py), both measured in the same run with ``wrk`` (Debian package ``wrk``):
8 connections, 2 wrk threads, 10 s per repetition, 3 repetitions per page. wrk shares the
two cores with gunicorn and PostgreSQL, for the app and the ceiling alike.

Data (not an empty ledger): the demo seed (users, 3 workspaces, 12 tenants), 1,000 bench
tenants and 1,000,000 runs (bench/runs_list.py's loader: 90 days, skewed types and
outcomes, tenant rows), 20,000 findings on the demo tenant the tenant pages show, the runs
rollup recounted (run_rollup.rebuild(), as after any bulk load), then VACUUM ANALYZE. No
telemetry events: bench/dashboard.py times the control tower with 10M of them.

A third app under the same command, bench/_floor.py, does only what a signed-in list of 50
runs cannot skip (a session lookup, the runs query, a precompiled 50-row template) with raw
psycopg and no framework around it: the most any runs list could reach on this machine.

Each page is fetched once first and checked (200, the page's own text), and every wrk
repetition must answer only 2xx: a redirect to the login page would flatter the figures.
Printed per page: req/s median (min–max of the 3 repetitions) and latency p50/p95/p99
(medians of the repetitions), and the share of the hello ceiling.

Run from the repository root:  .venv/bin/python bench/http_load.py [--runs N] [--seconds S]
(Not bench/http.py: a script of that name would shadow the standard library's http package
for every script in this folder.)
"""
from __future__ import annotations

import sys

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tenantpilot_bench_http")

import psycopg  # noqa: E402

from _common import DATABASE_URL, REDIS_URL, _libpq_url, print_header, setup, teardown  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPS = 3
CONNECTIONS = 8
FINDINGS = 20_000

# wrk prints its own summary; this script adds the percentiles we report and the error
# counts we refuse to ignore, on one line we parse.
WRK_LUA = """
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
init = function(args)
  bad = 0
  last_bad = 0
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1; last_bad = status end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local not200, last = 0, 0
  for _, t in ipairs(threads) do
    not200 = not200 + t:get("bad")
    if t:get("last_bad") ~= 0 then last = t:get("last_bad") end
  end
  io.write(string.format("TPBENCH %d %f %f %f %f %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, not200, last))
end
"""


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("Procfile has no web: line")


class Gunicorn:
    """The Procfile's web command with ``wsgi:app`` swapped for ``app_spec``."""

    def __init__(self, app_spec: str, env: dict, cwd: Path):
        self.port = free_port()
        command = procfile_web_command().replace("wsgi:app", app_spec)
        self.env = {**os.environ, **env, "PORT": str(self.port), "WEB_CONCURRENCY": "2"}
        self.env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{self.env['PATH']}"
        # Logs go to a file: a pipe nobody drains would fill and stall the server.
        self.log = tempfile.NamedTemporaryFile(prefix="tpbench-gunicorn-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=cwd, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = command

    def wait_ready(self, path: str = "/", timeout: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                httpx.get(self.base + path, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def sign_in(base: str, plane: str, email: str, password: str) -> str:
    """The real login form; returns the Cookie header value of the signed-in session."""
    import httpx

    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        page = client.get(f"/{plane}/login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        answer = client.post(f"/{plane}/login", data={"email": email, "password": password, "csrf_token": token})
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"{plane} login answered {answer.status_code}")
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def wrk(url: str, cookie: str | None, seconds: int, script: Path) -> dict:
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("TPBENCH "))
    n, dur, p50, p95, p99, *errors, last_bad = line.split()[1:]
    return {"rps": int(n) / float(dur), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "errors": sum(int(e) for e in errors), "last_bad": int(last_bad),
            "kinds": dict(zip(("connect", "read", "write", "status", "timeout", "not 200"), map(int, errors)))}  # socket errors, timeouts and every answer but 200


def measure(label: str, url: str, cookie: str | None, seconds: int, script: Path, expect: str) -> dict:
    import httpx

    first = httpx.get(url, headers={"Cookie": cookie} if cookie else {}, timeout=30)
    if first.status_code != 200 or expect not in first.text:
        raise RuntimeError(f"{label}: {url} answered {first.status_code} without {expect!r}")
    reps = [wrk(url, cookie, seconds, script) for _ in range(REPS)]
    bad = sum(r["errors"] for r in reps)
    if bad:
        statuses = sorted({r["last_bad"] for r in reps if r["last_bad"]})
        raise RuntimeError(f"{label}: {bad} errors or answers other than 200 under load (status {statuses}; {[r['kinds'] for r in reps]})")
    return {"label": label, "url": url, "reps": reps}


def load_findings(tenant_id: int) -> None:
    with psycopg.connect(_libpq_url(DATABASE_URL)) as conn:
        conn.execute("SELECT setseed(0.17)")
        conn.execute(
            """INSERT INTO findings (tenant_id, type, severity, status, title, fingerprint, created_at,
                                     first_seen_at, last_seen_at, due_at)
               SELECT %(t)s, (ARRAY['drift','permission','compliance'])[1 + (i %% 3)],
                      (ARRAY['critical','high','medium','low'])[1 + floor(random() * 4)::int],
                      (ARRAY['new','triaged','in_progress','resolved'])[1 + floor(random() * 4)::int],
                      'Finding ' || i, 'fp-' || i, now() - (i || ' minutes')::interval,
                      now() - (i || ' minutes')::interval, now(), now() + interval '14 days'
               FROM generate_series(1, %(n)s) AS i""", {"t": tenant_id, "n": FINDINGS})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench/http_load.py needs wrk (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(line_buffering=True)
    print_header("bench/http_load.py — signed-in pages under the Procfile's gunicorn, wrk -c8, beside a bare Flask app",
                 f"{REPS} × {args.seconds} s per page, {CONNECTIONS} connections; "
                 f"data: demo seed + {args.runs:,} runs + {FINDINGS:,} findings")
    import runs_list

    from sqlalchemy import select

    from tenantpilot import demo, run_rollup
    from tenantpilot.extensions import db
    from tenantpilot.models import Tenant

    runs_list.N_RUNS = args.runs
    app, config, tenant_ids = setup(runs_list.N_TENANTS)
    servers: list[Gunicorn] = []
    script = Path(tempfile.mkdtemp(prefix="tpbench-wrk-")) / "report.lua"
    script.write_text(WRK_LUA)
    try:
        with app.app_context():
            demo.seed(app.extensions["tenantpilot"].registry.platform_capabilities)
            ws_id = db.session.scalar(select(Tenant.workspace_id).where(Tenant.id == tenant_ids[0]))
            demo_tenant = db.session.scalar(select(Tenant.id).where(Tenant.name == "Northwind HQ"))
            db.session.remove()
        t = time.perf_counter()
        counts = runs_list.load(tenant_ids, ws_id)
        load_findings(demo_tenant)
        with app.app_context():
            # The loader writes runs by SQL, around the ledger: recount the hourly rollup the
            # control tower reads, as `flask runs rebuild-rollup` does after a bulk load
            # (an empty rollup would time a page that shows nothing).
            run_rollup.rebuild()
            db.session.remove()
        with psycopg.connect(_libpq_url(DATABASE_URL), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        log(f"loaded {counts.get('runs', args.runs):,} runs, {FINDINGS:,} findings in {time.perf_counter() - t:.0f} s")

        env = {"DATABASE_URL": _libpq_url(DATABASE_URL), "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench-http",
               "TENANTPILOT_QUEUE_PREFIX": config["TENANTPILOT_QUEUE_PREFIX"],
               "TENANTPILOT_INSTANCE_PATH": tempfile.mkdtemp(prefix="tpbench-http-instance-")}
        hello = Gunicorn("bench._hello:app", {}, ROOT)
        web = Gunicorn("wsgi:app", env, ROOT)
        servers += [hello, web]
        hello.wait_ready()
        web.wait_ready("/healthz")
        log(f"web: {web.command}")
        ops = sign_in(web.base, "system", "ops@demo.test", "demo-ops-pass")
        owner = sign_in(web.base, "admin", "owner@demo.test", "demo-owner-pass")
        with psycopg.connect(_libpq_url(DATABASE_URL)) as conn:
            ops_session = conn.execute("SELECT id FROM auth_sessions WHERE plane = 'system' "
                                       "ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        floor = Gunicorn("bench._floor:app", {"DATABASE_URL": _libpq_url(DATABASE_URL),
                                              "FLOOR_SESSION_ID": ops_session}, ROOT)
        servers.append(floor)
        floor.wait_ready()
        cases = [
            ("bare Flask hello (ceiling)", hello.base + "/", None, "hello"),
            ("floor: 50 runs, bare Flask+Jinja+psycopg", floor.base + "/", None, "data-run="),
            ("runs list /system/ops/runs", web.base + "/system/ops/runs", ops, "data-run="),
            ("dashboard /system/ (24h)", web.base + "/system/", ops, "Control tower"),
            ("dashboard /system/?window=30d", web.base + "/system/?window=30d", ops, "Control tower"),
            ("tenant overview /admin/t/<id>/", web.base + f"/admin/t/{demo_tenant}/", owner, "Northwind HQ"),
            ("tenant findings /admin/t/<id>/findings", web.base + f"/admin/t/{demo_tenant}/findings", owner, "Finding "),
        ]
        results = []
        for label, url, cookie, expect in cases:
            results.append(measure(label, url, cookie, args.seconds, script, expect))
            r = results[-1]
            log(f"{label}: " + ", ".join(f"{x['rps']:.0f}" for x in r["reps"]) + " req/s")
        ceiling = statistics.median(x["rps"] for x in results[0]["reps"])
        print()
        print(f"{'page':<42} {'req/s':>7} {'(min–max)':>13} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'of hello':>8}")
        for r in results:
            rps = [x["rps"] for x in r["reps"]]
            med = statistics.median(rps)
            print(f"{r['label']:<42} {med:>7.0f} {f'({min(rps):.0f}–{max(rps):.0f})':>13} "
                  f"{statistics.median(x['p50'] for x in r['reps']):>7.1f} "
                  f"{statistics.median(x['p95'] for x in r['reps']):>7.1f} "
                  f"{statistics.median(x['p99'] for x in r['reps']):>7.1f} {med / ceiling:>8.0%}")
        return 0
    finally:
        for s in servers:
            s.stop()
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
