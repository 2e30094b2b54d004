"""docs/api.md stays true: it shows docs/examples/api_walkthrough.py exactly, and that
script, run as written (a subprocess with its two environment variables), drives a live
server whose runs a real worker processes: an RQ worker process on Redis when the suite
has Redis, else the embedded mode's in-process worker, as `make run` serves it."""
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tenantpilot import controls
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationRun
from tenantpilot.testing import api_client, backends
from tests.browser import live_server

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "api.md").read_text()
SCRIPT = ROOT / "docs" / "examples" / "api_walkthrough.py"
VENDOR = ROOT / "tenantpilot" / "static" / "vendor"


def test_the_doc_shows_the_walkthrough_script_as_it_is():
    m = re.search(r"### `docs/examples/api_walkthrough.py`\n\n```python\n(.*?)\n```\n", DOC, re.S)
    assert m, "docs/api.md does not show docs/examples/api_walkthrough.py"
    assert m.group(1) == SCRIPT.read_text().rstrip()


def test_the_doc_names_every_problem_type():
    from tenantpilot.web.apiv1 import PROBLEMS

    # Every slug the code raises (core and plugins), found in the source, so a new one
    # cannot go undocumented.
    raised = set()
    for path in [*(ROOT / "tenantpilot").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        text = path.read_text()
        raised |= set(re.findall(r'problem\(\s*\d{3},\s*"([a-z-]+)"', text))
        raised |= set(re.findall(r'RetryRefused\("([a-z-]+)"', text))
        # An ApprovalRefused of status 422 is a ``validation`` problem; the others are their own type.
        raised |= {slug for slug, rest in re.findall(r'ApprovalRefused\("([a-z-]+)",([^)]*)', text)
                   if "status=422" not in rest}
    assert {"paused", "drift", "run-finished", "nothing-to-retry", "safety-check-failed"} <= raised
    slugs = sorted({slug for slug, _title in PROBLEMS.values()} | raised)
    missing = [s for s in slugs if f"`urn:tenantpilot:problem:{s}`" not in DOC]
    assert missing == []


def test_the_vendored_redoc_is_the_one_versions_names():
    versions = (VENDOR / "VERSIONS").read_text()
    noted = re.search(r"sha256 of redoc/(\S+):\s+([0-9a-f]{64})", versions)
    assert noted, "VERSIONS notes no sha256 for redoc"
    assert hashlib.sha256((VENDOR / "redoc" / noted.group(1)).read_bytes()).hexdigest() == noted.group(2)


class _Worker:
    """A real `flask worker` process on the app's database and Redis queues (the
    Procfile's worker command)."""

    def __init__(self, app, tmp_path):
        env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
               "REDIS_URL": app.config["REDIS_URL"], "SECRET_KEY": app.config["SECRET_KEY"],
               "TENANTPILOT_QUEUE_PREFIX": app.config["TENANTPILOT_QUEUE_PREFIX"],
               "TENANTPILOT_INSTANCE_PATH": str(tmp_path / "worker-instance"), "LOG_LEVEL": "WARNING"}
        self.log = tmp_path / "worker.log"
        self.proc = subprocess.Popen([str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "worker"],
                                     cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def served(make_app, tmp_path):
    """(app, base URL) of a live server with a worker."""
    if backends().redis_url:
        app = make_app()
        worker = _Worker(app, tmp_path)
    else:
        app, worker = make_app(TENANTPILOT_EMBEDDED_WORKER=True), None
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    try:
        with live_server(app) as base:
            yield app, base
    finally:
        if worker:
            worker.stop()


def approve_when_requested(approver, deadline: float):
    """The second operator: approve the first pending request as soon as it appears."""
    while time.monotonic() < deadline:
        pending = approver.get("/system/api/v1/approvals?status=pending").json["approvals"]
        if pending:
            return approver.post(f"/system/api/v1/approvals/{pending[0]['id']}/approve",
                                 json={"confirmation": "BACKFILL"})
        time.sleep(0.5)
    raise AssertionError("no approval request appeared")


def test_the_walkthrough_script_runs_as_written(served):
    app, base = served
    key = control = "findings.lifecycle.backfill"
    token = api_client(app, "system", "ops@demo.test", name="walk-through").token
    env = {**os.environ, "TENANTPILOT_URL": base, "TENANTPILOT_TOKEN": token}
    approver = api_client(app, "system", "approver@demo.test", name="second pair of eyes")
    started = time.perf_counter()
    # All tenants of a runbook that changes data needs a second operator: the script waits
    # for the approval; the demo's approver gives it through the API meanwhile.
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    approved = approve_when_requested(approver, deadline=time.monotonic() + 60)
    out, err = proc.communicate(timeout=180)
    print(out, err, f"({time.perf_counter() - started:.1f} s)")
    assert proc.returncode == 0, out + err
    assert approved.status_code == 201, approved.get_data(as_text=True)

    # What the person running it reads: the runbooks, the preflight, the start, the run's
    # progress to the end, the control paused and then enabled again.
    assert f"runbook {key}: Findings lifecycle backfill (control: enabled)" in out
    assert re.search(r"^preflight \d+: [1-9]\d* to change in all tenants$", out, re.M)
    assert re.search(r"^start: approval_requested — ", out, re.M)
    approval_id = approved.json["approval"]["id"]
    assert re.search(rf"^approval {approval_id}: waiting for another operator", out, re.M)
    assert f"approval {approval_id}: approved by {approved.json['approval']['decided_by']['name']}" in out
    run_id = int(re.search(r"^run (\d+) completed: succeeded$", out, re.M).group(1))
    assert re.search(rf"^  run {run_id}: completed, (\d+)/\1 tenants \(100%\)$", out, re.M)
    assert re.search(rf"^pause {control}: \S+ \(control paused\)$", out, re.M)
    assert re.search(rf"^resume {control}: \S+ \(control enabled\)$", out, re.M)
    assert out.index(f"pause {control}") < out.index(f"resume {control}")

    # What the server holds afterwards: the run started by the API and completed by the
    # worker, the control not paused, its pause and resume audited.
    with app.app_context():
        run = db.session.get(OperationRun, run_id)
        assert (run.type, run.status, run.outcome) == (key, "completed", "succeeded")
        assert run.context["source"] == "api" and run.tenants_done == run.tenants_total > 0
        assert run.context["approval"]["request_id"] == approval_id
        assert not controls.evaluate(control, None).paused
        actions = list(db.session.scalars(select(AuditLog.action).where(
            AuditLog.action.in_(("operational_control.paused", "operational_control.resumed"))).order_by(AuditLog.id)))
        assert actions == ["operational_control.paused", "operational_control.resumed"]
