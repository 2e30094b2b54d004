"""Schemathesis (the real tool, its CLI) against the live app: every operation of both
planes' OpenAPI documents, as they are at run time (the core's and every plugin's), with
a token of each plane.

The app is served over real HTTP (the browser tests' live server, on the test database)
and seeded like the browser tests (demo data, runs of every kind, a paused control), so
ids in the documents' ranges hit real rows now and then. Tokens: the demo's platform
operator (every platform capability) and the demo workspace owner (owner of two
workspaces, not a member of the third), each holding all its owner's capabilities.

Checks: no 5xx, the status code, content type, headers and body of every answer as the
document declares them. Any failure fails the test with schemathesis' own report. The
figures (operations, requests sent and their status codes, per plane) are printed, written to
artifacts/schemathesis_summary.txt and shown in pytest's terminal summary.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


from tenantpilot.testing import api_client
from tests.browser import ARTIFACTS, live_server
from tests.test_browser_csp import seed

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
# Deterministic in CI (one seed), bounded: ~3 minutes for both planes at most.
MAX_EXAMPLES = 30
SEED = 20261201
PHASES = "examples,coverage,fuzzing"  # no stateful phase: the documents declare no links
TOKENS = {"system": "ops@demo.test", "admin": "owner@demo.test"}
ST = Path(sys.executable).with_name("st")


class _TerminalSummary:
    def __init__(self):
        self.text = ""

    def pytest_terminal_summary(self, terminalreporter):
        if self.text:
            terminalreporter.write_sep("-", "schemathesis figures")
            terminalreporter.write_line(self.text)


def run_schemathesis(base: str, plane: str, token: str, out: Path) -> tuple[subprocess.CompletedProcess, list]:
    """``st run`` over one plane's document → (the process, its ndjson events)."""
    events = out / f"{plane}.ndjson"
    cmd = [str(ST), "run", f"{base}/{plane}/api/v1/openapi.json", "--checks", CHECKS, "--phases", PHASES,
           "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
           "--header", f"Authorization: Bearer {token}", "--generation-database", "none",
           "--request-timeout", "30", "--no-color", "--report", "ndjson,junit", "--report-ndjson-path",
           str(events), "--report-junit-path", str(out / f"{plane}.junit.xml"), "--continue-on-failure"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out)
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()] if events.exists() else []
    return proc, lines


def figures(plane: str, events: list) -> dict:
    """Operations covered, requests sent and their answers' status codes, from
    schemathesis' events."""
    operations, sent, statuses = set(), 0, Counter()
    for event in events:
        recorder = (event.get("ScenarioFinished") or {}).get("recorder") or {}
        if recorder.get("interactions"):
            operations.add(recorder["label"])
        for interaction in (recorder.get("interactions") or {}).values():
            sent += 1
            response = interaction.get("response") or {}
            statuses[response.get("status_code", "no answer")] += 1
    return {"operations": sorted(operations), "sent": sent, "statuses": dict(sorted(statuses.items(), key=str))}


def documented_operations(app, plane: str) -> list[str]:
    doc = app.test_client().get(f"/{plane}/api/v1/openapi.json").get_json()
    return sorted(f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item
                  if method in ("get", "put", "post", "delete", "patch"))


def test_schemathesis_every_operation_of_both_planes(app, drain, request, tmp_path):
    reporter = _TerminalSummary()
    request.config.pluginmanager.register(reporter, f"schemathesis-summary-{id(reporter)}")
    # The API's per-token budget (600/min) would answer schemathesis with 429s.
    app.config["TENANTPILOT_API_RATE_LIMIT"] = "100000 per minute"
    seed(app, drain)
    tokens = {plane: api_client(app, plane, email, name=f"schemathesis {plane}").token
              for plane, email in TOKENS.items()}
    results, lines = {}, []
    with live_server(app) as base:
        for plane, token in tokens.items():
            started = time.perf_counter()
            proc, events = run_schemathesis(base, plane, token, tmp_path)
            results[plane] = (proc, figures(plane, events))
            f = results[plane][1]
            lines.append(f"{plane}: {len(f['operations'])} operations, {f['sent']} requests sent, "
                         f"{time.perf_counter() - started:.0f} s (fuzzing: max {MAX_EXAMPLES} examples per "
                         f"operation; seed {SEED}); answers by status: {f['statuses']}")
            lines += [f"  {op}" for op in f["operations"]]
    reporter.text = "\n".join(lines)
    print(reporter.text)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "schemathesis_summary.txt").write_text(reporter.text + "\n")
    for plane, (proc, f) in results.items():
        # Nothing failed, and every operation of the document was exercised.
        assert proc.returncode == 0, f"schemathesis on the {plane} plane:\n{proc.stdout[-20000:]}\n{proc.stderr[-3000:]}"
        assert f["operations"] == documented_operations(app, plane), proc.stdout[-5000:]


def test_what_schemathesis_found_stays_fixed(app, factory):
    """Found by the run above: each document resolves every response it references (a
    body-validating operation's 422); a POST without a body is a 422 problem naming the
    missing field (it was an HTML 500: webargs' error carries headers=None); a body that
    is not JSON is a 415 (it read as no body at all)."""
    for plane in ("system", "admin"):
        doc = app.test_client().get(f"/{plane}/api/v1/openapi.json").get_json()
        refs = {ref.rsplit("/", 1)[1] for ref in json.dumps(doc).split('"$ref": "')[1:]
                for ref in [ref.split('"', 1)[0]] if ref.startswith("#/components/responses/")}
        assert refs <= set(doc.get("components", {}).get("responses", {})), plane
    assert "UNPROCESSABLE_ENTITY" in json.dumps(app.test_client().get("/system/api/v1/openapi.json").get_json())
    ops = factory.platform_user()
    api = api_client(app, "system", ops.email)
    r = api.post("/system/api/v1/runbooks/ops.pipeline_canary/preflight")
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    assert r.get_json()["errors"] == {"scope": ["Missing data for required field."]}
    # JSON sent as another type is refused as such, not read as a missing body.
    r = api.post("/system/api/v1/runbooks/ops.pipeline_canary/preflight", content_type="text/plain",
                 data='{"scope": {"kind": "all_tenants"}}')
    assert r.status_code == 415 and r.get_json()["type"] == "urn:tenantpilot:problem:unsupported-media-type"
