"""A walk through the TenantPilot Ops platform API (docs/api.md).

List the runbooks, preflight one for all tenants, start it (typed confirmation word and
a reason), follow the run until it completes, then pause the runbook's operational
control and resume it.

    export TENANTPILOT_URL=http://127.0.0.1:5000
    export TENANTPILOT_TOKEN=tps_…   # a platform token: runbooks view + run, the runbook's own
                                     # capability, runs view, controls manage
    python api_walkthrough.py [RUNBOOK_KEY]

The runbook key comes from the first argument, else TENANTPILOT_RUNBOOK, else
findings.lifecycle.backfill. Needs httpx (pip install httpx).
"""
import os
import sys
import time

import httpx

API = "/system/api/v1"
REASON = "API walk-through (docs/api.md)"


class Problem(Exception):
    """An RFC 9457 problem answer: branch on .slug, show .detail."""

    def __init__(self, body: dict):
        super().__init__(f"{body.get('status')} {body.get('title')}: {body.get('detail')}")
        self.body = body
        self.slug = body.get("type", "").rsplit(":", 1)[-1]


def call(client: httpx.Client, method: str, path: str, body: dict | None = None) -> dict:
    """One API request; waits and retries on 429, raises Problem on any other error."""
    while True:
        response = client.request(method, API + path, json=body)
        if response.status_code == 429:
            wait = int(response.headers.get("Retry-After", "1"))
            print(f"  rate limited; retrying in {wait} s")
            time.sleep(wait)
            continue
        if response.headers.get("Content-Type", "").startswith("application/problem+json"):
            raise Problem(response.json())
        response.raise_for_status()
        return response.json()


def follow(client: httpx.Client, run: dict) -> dict:
    """Poll the run until it completes, printing its progress when it changes."""
    last = None
    while True:
        run = call(client, "GET", f"/runs/{run['id']}")
        progress = (run["status"], run["tenants_done"], run["tenants_total"])
        if progress != last:
            print(f"  run {run['id']}: {run['status']}, {run['tenants_done']}/{run['tenants_total']} tenants "
                  f"({run['progress_percent']}%)")
            last = progress
        if run["status"] == "completed":
            return run
        time.sleep(1)


def wait_for_approval(client: httpx.Client, approval: dict) -> int | None:
    """Wait until another operator decides; the run's id once approved, else None."""
    print(f"approval {approval['id']}: waiting for another operator (expires {approval['expires_at']})")
    while approval["status"] == "pending":
        time.sleep(1)
        approval = call(client, "GET", f"/approvals/{approval['id']}")
    decider = (approval["decided_by"] or {}).get("name", "nobody")
    print(f"approval {approval['id']}: {approval['status']} by {decider}")
    return approval["run_id"] if approval["status"] == "approved" else None


def main() -> int:
    base_url = os.environ["TENANTPILOT_URL"].rstrip("/")
    token = os.environ["TENANTPILOT_TOKEN"]
    key = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TENANTPILOT_RUNBOOK", "findings.lifecycle.backfill")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        # 1. The runbooks this token may run.
        runbooks = {rb["key"]: rb for rb in call(client, "GET", "/runbooks")["runbooks"]}
        for rb in runbooks.values():
            print(f"runbook {rb['key']}: {rb['label']} (control: {rb['control']['state']})")
        if key not in runbooks:
            print(f"no runbook {key} for this token")
            return 1
        runbook = runbooks[key]

        # 2. Preflight for all tenants: read-only figures, stored for 15 minutes.
        preflight = call(client, "POST", f"/runbooks/{key}/preflight", {"scope": {"kind": "all_tenants"}})
        print(f"preflight {preflight['preflight_id']}: {preflight['result']['affected_count']} to change "
              f"in {preflight['scope_label']}")
        if preflight["nothing_to_do"]:
            print("nothing to do")
            return 0

        # 3. Start it: the typed confirmation word and a reason, as on the page.
        try:
            started = call(client, "POST", f"/runbooks/{key}/start", {
                "preflight_id": preflight["preflight_id"], "confirmation": runbook["confirmation_word"],
                "reason_code": "SUPPORT", "reason_text": REASON})
        except Problem as problem:
            # paused (409), drift (409: preflight again), validation (422: see errors) …
            print(f"not started ({problem.slug}): {problem.body['detail']}")
            return 1
        print(f"start: {started['status']} — {started['message']}")
        if started["status"] == "approval_requested":
            # Four eyes: another operator approves the stored preflight (page, CLI or API).
            run_id = wait_for_approval(client, started["approval"])
            if run_id is None:
                return 1
            started["run"] = call(client, "GET", f"/runs/{run_id}")

        # 4. Follow the run to the end.
        run = follow(client, started["run"])
        print(f"run {run['id']} completed: {run['outcome']}")

        # 5. Pause the runbook's control everywhere, then resume it.
        control = runbook["control"]["key"]
        if not control:
            print(f"{key} has no operational control to pause")
            return 0
        paused = call(client, "POST", f"/controls/{control}/pause",
                      {"scope_type": "global", "reason": REASON, "expires_at": None})
        print(f"pause {control}: {paused['outcome']} (control {paused['control']['state']})")
        resumed = call(client, "POST", f"/controls/{control}/resume", {"scope_type": "global"})
        print(f"resume {control}: {resumed['outcome']} (control {resumed['control']['state']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
