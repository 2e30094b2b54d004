"""Embedded-mode soak: the real `make run` server (SQLite in a fresh instance folder,
in-process fakeredis queue, embedded worker and scheduler threads) under four concurrent
operators for 30 seconds.

Each simulated operator signs in on /system and loops: preflight the canary runbook for
all tenants → confirm → the run page, plus the dashboard, the audit log, the runs list and
a run's live fragment. Afterwards every response was < 500, the server log has no
"database is locked" / OperationalError, every run the operators started completed and
succeeded, and the audit log has exactly one row per action.

The summary line is printed and written to artifacts/embedded_soak.txt."""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.test_zero_install import ROOT, free_port

OPERATORS = 4
LOAD_SECONDS = 30
SETTLE_SECONDS = 60  # runs the operators started must complete within this after the load
STARTUP_SECONDS = 180  # migrate + seed + serve on a loaded 2-core CI machine
REQUEST_TIMEOUT = 60  # above SQLite's busy_timeout (30 s): a slow answer is not a transport error
EMAIL, PASSWORD = "ops@demo.test", "demo-ops-pass"
RUNBOOK = "ops.pipeline_canary"
CONFIRMATION_WORD = "CANARY"  # plugins/canary; read from the confirm page when it shows one
ARTIFACT = ROOT / "artifacts" / "embedded_soak.txt"

VALUE_RE = re.compile(r'value="([^"]*)"')
CONFIRM_WORD_RE = re.compile(r"Type <code>([^<]+)</code> to start")
RUN_URL_RE = re.compile(r"/system/ops/runs/(\d+)$")
FLASH_RE = re.compile(r'<p class="flash flash-\w+" role="status">([^<]*)</p>')


def local(location: str) -> str:
    """A redirect's Location as a path (+ query), whether relative or absolute."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def hidden(html: str, name: str) -> str | None:
    """The value of the hidden input ``name`` (any attribute order)."""
    for tag in re.findall(r"<input[^>]*>", html):
        if re.search(rf'name="{re.escape(name)}"', tag):
            found = VALUE_RE.search(tag)
            return found.group(1) if found else None
    return None


class Recorder:
    """Every request of every operator: (operator, step, method, path, status, seconds)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple] = []
        self.errors: list[str] = []  # transport errors and protocol surprises
        self.counts = collections.Counter()  # logins, preflight_ok, confirms, started, landed_on_existing
        self.started_runs: set[int] = set()

    def add(self, *row):
        with self.lock:
            self.requests.append(row)

    def count(self, key: str, n: int = 1):
        with self.lock:
            self.counts[key] += n

    def error(self, text: str):
        with self.lock:
            self.errors.append(text)


class Operator(threading.Thread):
    def __init__(self, n: int, base: str, rec: Recorder, stop: threading.Event):
        super().__init__(name=f"operator-{n}", daemon=True)
        self.n, self.base, self.rec, self.stop = n, base, rec, stop
        self.http = requests.Session()  # its own cookie jar
        self.last_run: int | None = None

    # one request, recorded; redirects are followed by the caller (to see each 302)
    def call(self, step: str, method: str, path: str, **kw) -> requests.Response | None:
        started = time.perf_counter()
        try:
            resp = self.http.request(method, self.base + path, allow_redirects=False, timeout=REQUEST_TIMEOUT, **kw)
        except requests.RequestException as exc:
            self.rec.add(self.n, step, method, path, None, time.perf_counter() - started)
            self.rec.error(f"operator {self.n} {method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.rec.add(self.n, step, method, path, resp.status_code, time.perf_counter() - started)
        return resp

    def expect(self, resp, status: int, what: str) -> bool:
        if resp is None:
            return False
        if resp.status_code != status:
            self.rec.error(f"operator {self.n} {what}: expected {status}, got {resp.status_code} "
                           f"{resp.request.method} {resp.request.path_url}")
            return False
        return True

    def sign_in(self) -> bool:
        page = self.call("login_form", "GET", "/system/login")
        if not self.expect(page, 200, "sign-in form"):
            return False
        resp = self.call("login", "POST", "/system/login",
                         data={"csrf_token": hidden(page.text, "csrf_token"), "email": EMAIL, "password": PASSWORD})
        if not self.expect(resp, 302, "sign-in"):
            return False
        self.rec.count("logins")
        return True

    def run(self):
        try:
            if not self.sign_in():
                return
            while not self.stop.is_set():
                self.start_canary()
                self.browse()
        except Exception as exc:  # a bug of the test itself must show, not hang the thread silently
            self.rec.error(f"operator {self.n} crashed: {type(exc).__name__}: {exc}")

    def start_canary(self):
        base = f"/system/ops/runbooks/{RUNBOOK}"
        page = self.call("preflight_form", "GET", f"{base}/preflight")
        if not self.expect(page, 200, "preflight form"):
            return
        resp = self.call("preflight", "POST", f"{base}/preflight",
                         data={"csrf_token": hidden(page.text, "csrf_token"), "kind": "all_tenants"})
        if not self.expect(resp, 302, "preflight submit"):
            return
        self.rec.count("preflight_ok")
        confirm_url = local(resp.headers["Location"])
        if "/confirm" not in confirm_url:
            self.rec.error(f"operator {self.n}: preflight redirected to {confirm_url}")
            return
        page = self.call("confirm_form", "GET", confirm_url)
        if not self.expect(page, 200, "confirm form"):
            return
        word = CONFIRM_WORD_RE.search(page.text)
        form = {
            "csrf_token": hidden(page.text, "csrf_token"),
            "preflight": hidden(page.text, "preflight"),
            "idempotency_token": hidden(page.text, "idempotency_token"),
            "confirmation": word.group(1) if word else CONFIRMATION_WORD,
            "reason_code": "DATA_REPAIR",
            "reason_text": f"Embedded soak, operator {self.n}",
        }
        if not all(form.values()):
            self.rec.error(f"operator {self.n}: confirm form incomplete: {sorted(k for k, v in form.items() if not v)}")
            return
        resp = self.call("confirm", "POST", f"{base}/confirm", data=form)
        if not self.expect(resp, 302, "confirm submit"):
            return
        target = local(resp.headers["Location"])
        match = RUN_URL_RE.search(target)
        if not match:
            self.rec.error(f"operator {self.n}: confirm redirected to {target}")
            return
        run_id = int(match.group(1))
        page = self.call("run_page", "GET", target)
        if not self.expect(page, 200, "run page"):
            return
        flashes = " | ".join(FLASH_RE.findall(page.text))
        self.rec.count("confirms")
        with self.rec.lock:
            if "started." in flashes:
                self.rec.counts["started"] += 1
                if run_id in self.rec.started_runs:
                    self.rec.errors.append(f"operator {self.n}: run #{run_id} reported 'started' twice")
                self.rec.started_runs.add(run_id)
            elif "already queued" in flashes or "already running" in flashes:
                self.rec.counts["landed_on_existing"] += 1
            else:
                self.rec.errors.append(f"operator {self.n}: run #{run_id} page without a start message: {flashes!r}")
        self.last_run = run_id

    def browse(self):
        for step, path in (("dashboard", "/system/"), ("audit", "/system/audit"), ("runs", "/system/ops/runs")):
            self.expect(self.call(step, "GET", path), 200, step)
        if self.last_run:
            self.expect(self.call("progress", "GET", f"/system/ops/runs/{self.last_run}/progress",
                                  headers={"HX-Request": "true"}), 200, "run progress fragment")


def ro_db(path: Path) -> sqlite3.Connection:
    """A read-only connection: WAL readers never take the write lock the server needs."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def query(path: Path, sql: str, params=()) -> list[tuple]:
    conn = ro_db(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def app_frames(exc: str) -> str:
    """A traceback without library frames: the project's frames (with their code line) and
    the exception lines."""
    lines, keep, out = exc.splitlines(), False, []
    for line in lines:
        if line.startswith("  File "):
            keep = "site-packages" not in line and "<sqlalchemy" not in line
        elif line.startswith("    "):
            pass  # the code line (and carets) of the frame above: kept with it
        else:
            keep = True  # "Traceback …", the exception and its message
        if keep and not set(line.strip()) <= set("^~ "):
            out.append(line)
    return "\n".join(out)


ACCESS_RE = re.compile(r'^\S+ - - \[')  # werkzeug's access log
TEXT_HEAD_RE = re.compile(r"^\d\d:\d\d:\d\d ")  # RQ's plain-text log lines
PROBLEM_WORDS = ('"level": "error"', '"level": "critical"', "traceback", "operationalerror", "database is locked")


def log_entries(text: str):
    """(head, traceback) of each entry of the server log: one JSON object per line (ours),
    plus plain-text blocks (RQ's worker log, a thread's uncaught traceback)."""
    block: list[str] = []
    for line in text.splitlines() + ["{}"]:
        if line.startswith("{") or ACCESS_RE.match(line) or (TEXT_HEAD_RE.match(line) and block):
            if block:
                yield block[0], "\n".join(block[1:])
                block = []
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    yield line, ""
                    continue
                if data:
                    extra = {k: v for k, v in data.items() if k not in ("ts", "level", "logger", "msg", "exc")}
                    yield (f"{data.get('ts')} {data.get('level')} {data.get('logger')}: {data.get('msg')} {extra or ''}",
                           str(data.get("exc") or ""))
            elif not ACCESS_RE.match(line):
                block = [line]
        else:
            block.append(line)


def log_excerpt(log_path: Path, limit: int = 5) -> str:
    """The distinct problems of the server log (errors, tracebacks, lock errors), each with
    how often it occurred (one traceback is often logged twice: by Flask and by the 500
    handler)."""
    seen: dict[str, list] = {}
    for head, exc in log_entries(log_path.read_text(errors="replace")):
        if not any(word in (head + exc).lower() for word in PROBLEM_WORDS):
            continue
        exc = app_frames(exc)
        seen.setdefault(exc or head, [head, exc, 0])[2] += 1
    shown = [f"(x{n}) {head}" + (f"\n{exc}" if exc else "") for head, exc, n in list(seen.values())[:limit]]
    if len(seen) > limit:
        shown.append(f"and {len(seen) - limit} more distinct problem(s)")
    return "\n---\n".join(shown)


def test_embedded_server_under_four_operators(tmp_path):
    t0 = time.monotonic()
    instance = tmp_path / "instance"
    db_path = instance / "tenantpilot.sqlite"
    log_path = tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(TENANTPILOT_INSTANCE_PATH=str(instance), PORT=str(port), PYTHONUNBUFFERED="1")
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]  # the venv's python runs the suite

    # Exactly what `make run` does before serving.
    for args in (["db", "upgrade", "heads"], ["demo", "seed"]):
        done = subprocess.run(flask + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=STARTUP_SECONDS)
        assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(flask + ["serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    rec = Recorder()
    stop = threading.Event()
    operators: list[Operator] = []
    try:
        health = None
        deadline = time.time() + STARTUP_SECONDS
        while time.time() < deadline and server.poll() is None:
            try:
                health = requests.get(f"{base}/healthz", timeout=5).json()
                break
            except (requests.RequestException, ValueError):
                time.sleep(0.5)
        assert health is not None, f"the server never served /healthz:\n{log_path.read_text()[-4000:]}"
        assert (health.get("queue"), health.get("database")) == ("embedded", "ok"), health
        started_up = time.monotonic() - t0

        baseline_run = query(db_path, "SELECT coalesce(max(id), 0) FROM operation_runs")[0][0]
        baseline_audit = query(db_path, "SELECT coalesce(max(id), 0) FROM audit_logs")[0][0]

        operators = [Operator(n, base, rec, stop) for n in range(1, OPERATORS + 1)]
        for op in operators:
            op.start()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for op in operators:
            op.join(timeout=2 * REQUEST_TIMEOUT)
        assert not any(op.is_alive() for op in operators), "an operator did not stop"

        # Every run the operators started must complete on its own (embedded worker).
        started = sorted(rec.started_runs)
        settle_deadline = time.time() + SETTLE_SECONDS
        runs: dict[int, tuple] = {}
        while True:
            runs = {row[0]: row[1:] for row in query(
                db_path, "SELECT id, status, outcome, tenants_total, tenants_done, tenants_failed FROM operation_runs "
                         "WHERE id > ? AND type = ?", (baseline_run, RUNBOOK))}
            if all(runs.get(rid, ("",))[0] == "completed" for rid in started) or time.time() > settle_deadline:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)

    # --- figures --------------------------------------------------------------------
    audit = dict(query(db_path, "SELECT action, count(*) FROM audit_logs WHERE id > ? GROUP BY action",
                       (baseline_audit,)))
    log_text = log_path.read_text(errors="replace")
    statuses = collections.Counter(r[4] for r in rec.requests)
    server_errors = [r for r in rec.requests if r[4] is not None and r[4] >= 500]
    locked = log_text.count("database is locked")
    operational = log_text.count("OperationalError")
    log_problems = sum(1 for head, exc in log_entries(log_text)
                       if any(word in (head + exc).lower() for word in PROBLEM_WORDS))
    completed = [rid for rid in started if runs.get(rid, ("",))[0] == "completed"]
    outcomes = collections.Counter(runs[rid][1] for rid in started if rid in runs)
    not_ok = {rid: runs.get(rid) for rid in started if runs.get(rid, ("", ""))[:2] != ("completed", "succeeded")}
    unknown_runs = sorted(set(runs) - set(started))  # runs in the database no operator saw "started"
    latencies = sorted(r[5] for r in rec.requests if r[4] is not None)
    p = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0)
    expected = {"platform.ops.runbooks.preflight": rec.counts["preflight_ok"],
                "platform.ops.runbooks.start": rec.counts["started"],
                "platform.login.succeeded": OPERATORS}
    summary = (
        f"embedded soak: {OPERATORS} operators x {LOAD_SECONDS}s; requests={len(rec.requests)} "
        f"statuses={dict(sorted(statuses.items(), key=str))} 5xx={len(server_errors)} "
        f"transport_errors={sum(1 for r in rec.requests if r[4] is None)} "
        f"lock_errors_in_log={locked} operational_errors_in_log={operational} error_entries_in_log={log_problems}; "
        f"confirms={rec.counts['confirms']} (new runs {rec.counts['started']}, landed on an active run "
        f"{rec.counts['landed_on_existing']}); runs completed/started={len(completed)}/{len(started)} "
        f"outcomes={dict(outcomes)} unreported_runs={len(unknown_runs)}; audit rows expected/found: "
        + ", ".join(f"{action.rsplit('.', 2)[-2] + '.' + action.rsplit('.', 1)[-1]} "
                    f"{want}/{audit.get(action, 0)}" for action, want in expected.items())
        + f"; latency p50={p(0.5) * 1000:.0f}ms p95={p(0.95) * 1000:.0f}ms max={p(1.0) * 1000:.0f}ms; "
        f"startup={started_up:.1f}s total={time.monotonic() - t0:.1f}s"
    )
    print("\n" + summary)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(summary + "\n")

    # --- assertions -----------------------------------------------------------------
    excerpt = log_excerpt(log_path)
    assert not server_errors, (f"{len(server_errors)} responses >= 500, first: "
                               f"{[(r[2], r[3], r[4]) for r in server_errors[:5]]}\nserver log:\n{excerpt}")
    assert locked == 0 and operational == 0, f"lock/OperationalError in the server log:\n{excerpt}"
    assert not rec.errors, f"{len(rec.errors)} unexpected answers, first: {rec.errors[:5]}\nserver log:\n{excerpt}"
    assert rec.counts["logins"] == OPERATORS
    assert started, "no operator started a run in 30 seconds"
    assert not not_ok, f"runs not completed+succeeded within {SETTLE_SECONDS}s: {not_ok}"
    assert not unknown_runs, f"runs created that no operator was told about: {unknown_runs}"
    found = {action: audit.get(action, 0) for action in expected}
    assert found == expected, f"audit rows per action: expected {expected}, found {found}"
