"""`operations.run.failed` alert deliveries: in-app, e-mail (a real local SMTP server,
aiosmtpd) and webhook (a real local HTTP server), with RQ retries run by real workers."""
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tenantpilot import seam
from tenantpilot.extensions import db
from tenantpilot.models import AlertDelivery, Notification, PlatformUser
from tenantpilot.queue import all_queues, enqueue_due_scheduled_jobs
from tenantpilot.runs import Scope
from tenantpilot.testing import login
from tests.helpers import platform_actor, run_row
from tests.support import fanout_plugin

PAYLOAD_KEYS = {"event", "run_id", "type", "label", "outcome", "completed_at", "counts", "tenants",
                "failure_reasons", "link"}
TENANT_NAMES = ("fail-contoso-ltd", "fail-northwind", "Fabrikam Incorporated")
WEBHOOK_TOKEN = "T0KEN-abcdefghijklmnopqrstuvwxyz-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


class Webhook:
    """A local HTTP endpoint answering POSTs with the scripted statuses (the last repeats)."""

    def __init__(self):
        self.statuses = [200]
        self.requests = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append((self.path, dict(self.headers), body))
                status = hook.statuses[min(len(hook.requests), len(hook.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{WEBHOOK_TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def app(make_app):
    # Interval 0: RQ re-enqueues a failed delivery at once, so a burst worker (drain) runs
    # every retry deterministically.
    return make_app(plugins=[fanout_plugin], ALERT_RETRY_INTERVALS="0,0,0")


def configure(app, smtp=None, webhook=None, **extra):
    app.config.update(SMTP_HOST="127.0.0.1" if smtp else None, SMTP_PORT=smtp.port if smtp else 25,
                      ALERT_EMAIL_TO="oncall@alerts.example.org" if smtp else None,
                      ALERT_WEBHOOK_URL=webhook.url if webhook else None, **extra)


def run_fanout(app, factory, drain, names=TENANT_NAMES, user=None):
    ws = factory.workspace("Contoso Holdings")
    for name in names:
        factory.tenant(ws, name=name)
    user = user or factory.platform_user()
    with app.app_context():
        result = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=platform_actor(app, user),
                            source="system_ui")
        assert result.status == "started"
        run_id = result.run.id
    drain()
    return run_id


def deliveries(app, run_id=None):
    with app.app_context():
        query = select(AlertDelivery).order_by(AlertDelivery.id)
        if run_id is not None:
            query = query.where(AlertDelivery.run_id == run_id)
        rows = db.session.scalars(query).all()
        for r in rows:
            db.session.expunge(r)
        return {r.destination_type: r for r in rows}


def alert_notifications(app):
    with app.app_context():
        return sorted(n.platform_user_id for n in db.session.scalars(
            select(Notification).where(Notification.kind == "operations.run.failed")))


def assert_clean(text: str):
    assert "@" not in text, text
    assert "Contoso" not in text and "Fabrikam" not in text and "northwind" not in text.lower()
    assert "contact admin" not in text and "Traceback" not in text and WEBHOOK_TOKEN not in text


def test_partially_succeeded_run_alerts_every_destination(app, factory, drain, smtp_server, webhook):
    configure(app, smtp=smtp_server, webhook=webhook)
    run_id = run_fanout(app, factory, drain)
    run = run_row(app, run_id)
    assert run.outcome == "partially_succeeded"

    rows = deliveries(app, run_id)
    assert set(rows) == {"in_app", "email", "webhook"}
    for row in rows.values():
        assert (row.event, row.status, row.attempts, row.last_error) == ("operations.run.failed", "sent", 1, None)
        assert row.sent_at is not None
    assert rows["webhook"].destination == f"http://127.0.0.1:{webhook.server.server_address[1]}"

    payload = rows["in_app"].payload
    assert set(payload) == PAYLOAD_KEYS
    assert payload["run_id"] == run_id and payload["link"] == f"/system/ops/runs/{run_id}"
    assert (payload["type"], payload["label"], payload["outcome"]) == ("tests.fanout", "Fan-out test",
                                                                       "partially_succeeded")
    assert payload["tenants"] == {"total": 3, "done": 3, "failed": 2, "skipped": 0}
    assert payload["failure_reasons"] == {"simulated_failure": 2}
    assert payload["counts"] == {"processed": 1, "updated": 1, "tenants": 3, "failed": 2}
    assert_clean(json.dumps(payload))

    # The webhook got exactly that JSON.
    [(path, headers, body)] = webhook.requests
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == payload
    assert_clean(body.decode())

    # The e-mail went through the real SMTP server: plain text, sanitized body.
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["oncall@alerts.example.org"]
    text = mail.content.decode()
    headers, _, mail_body = text.partition("\r\n\r\n")
    assert "Subject: [TenantPilot] Fan-out test partially succeeded (run #%d)" % run_id in headers
    assert "text/plain" in headers
    assert f"/system/ops/runs/{run_id}" in mail_body and "simulated_failure" in mail_body
    assert "3 total, 2 failed" in mail_body
    assert_clean(mail_body)


def test_in_app_alert_reaches_active_ops_viewers_only(app, factory, drain):
    configure(app)  # no SMTP, no webhook: in-app only
    ops = factory.platform_user()
    ops_view_only = factory.platform_user(capabilities=["platform.access_system_panel", "platform.ops.view"])
    no_panel = factory.platform_user(capabilities=["platform.ops.view"])
    # The initiator may run the runbook but not view ops pages: no alert for them.
    console_only = factory.platform_user(capabilities=[
        "platform.access_system_panel", "platform.console.view", "platform.runbooks.view",
        "platform.runbooks.run", "platform.runbooks.tests.fanout"])
    inactive = factory.platform_user()
    with app.app_context():
        db.session.get(PlatformUser, inactive.id).is_active = False
        db.session.commit()
    run_id = run_fanout(app, factory, drain, names=("fail-one", "fail-two"), user=console_only)
    assert run_row(app, run_id).outcome == "failed"
    rows = deliveries(app, run_id)
    assert set(rows) == {"in_app"} and rows["in_app"].status == "sent"
    assert alert_notifications(app) == sorted([ops.id, ops_view_only.id])
    assert no_panel.id and console_only.id and inactive.id
    with app.app_context():
        n = db.session.scalars(select(Notification).where(Notification.kind == "operations.run.failed")).first()
        assert n.run_id == run_id and "failed" in n.title and "2 of 2 tenants failed" in n.body
        assert_clean(n.title + n.body)


def test_succeeded_run_creates_no_alert(app, factory, drain, webhook):
    configure(app, webhook=webhook)
    factory.platform_user()
    run_id = run_fanout(app, factory, drain, names=("Fine tenant", "Another fine tenant"))
    assert run_row(app, run_id).outcome == "succeeded"
    assert deliveries(app) == {} and alert_notifications(app) == [] and webhook.requests == []


def test_webhook_500_then_200_is_delivered_on_the_retry(app, factory, drain, webhook):
    configure(app, webhook=webhook)
    webhook.statuses = [500, 200]
    run_id = run_fanout(app, factory, drain)
    row = deliveries(app, run_id)["webhook"]
    assert (row.status, row.attempts) == ("sent", 2)
    assert row.last_error == "webhook: HTTP 500"  # what the failed attempt saw
    assert len(webhook.requests) == 2 and webhook.requests[0][2] == webhook.requests[1][2]


def test_always_failing_webhook_ends_failed_after_the_last_retry(app, factory, drain, webhook):
    configure(app, webhook=webhook)
    webhook.statuses = [503]
    run_id = run_fanout(app, factory, drain)
    row = deliveries(app, run_id)["webhook"]
    assert (row.status, row.attempts, row.sent_at) == ("failed", 4, None)  # first attempt + max 3 retries
    assert row.last_error == "webhook: HTTP 503"
    assert WEBHOOK_TOKEN not in (row.last_error + (row.destination or ""))
    assert len(webhook.requests) == 4
    # RQ gave up too: the job is in the failed registry, nothing is left queued.
    deliveries_q = all_queues(app)[0]
    assert deliveries_q.count == 0 and deliveries_q.failed_job_registry.count == 1
    # The other destinations are independent.
    assert deliveries(app, run_id)["in_app"].status == "sent"


def test_unreachable_smtp_server_fails_with_a_short_sanitized_error(app, factory, drain):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), ALERT_EMAIL_TO="oncall@alerts.example.org")
    run_id = run_fanout(app, factory, drain)
    row = deliveries(app, run_id)["email"]
    assert (row.status, row.attempts) == ("failed", 4)
    assert row.last_error.startswith("email: unreachable") and "@" not in row.last_error
    assert len(row.last_error) <= 200


def test_retry_interval_waits_for_the_scheduler(app, factory, drain, webhook, clock):
    """An interval > 0 puts the retry in RQ's ScheduledJobRegistry; the core scheduled job
    ops.enqueue_scheduled_jobs moves it back once due (workers run no RQ scheduler)."""
    configure(app, webhook=webhook, ALERT_RETRY_INTERVALS="60")
    webhook.statuses = [500, 200]
    run_id = run_fanout(app, factory, drain)
    row = deliveries(app, run_id)["webhook"]
    assert (row.status, row.attempts) == ("pending", 1)
    deliveries_q = all_queues(app)[0]
    assert deliveries_q.scheduled_job_registry.count == 1 and deliveries_q.count == 0
    with app.app_context():
        assert enqueue_due_scheduled_jobs() == 0  # not due yet
        clock.advance(30)  # the clock started before the failed attempt: still inside the minute
        assert enqueue_due_scheduled_jobs() == 0 and deliveries_q.scheduled_job_registry.count == 1
        clock.advance(60)
        moved = enqueue_due_scheduled_jobs()
    assert moved == 1 and deliveries_q.count == 1
    drain()
    row = deliveries(app, run_id)["webhook"]
    assert (row.status, row.attempts) == ("sent", 2)
    assert "ops.enqueue_scheduled_jobs" in app.extensions["tenantpilot"].registry.scheduled_jobs


def test_retry_intervals_come_from_config(make_app):
    from tenantpilot.alerts import retry_policy

    app = make_app()
    assert app.config["ALERT_RETRY_INTERVALS"] == [10, 60, 300]  # default
    policy = retry_policy(app.config)
    assert (policy.max, policy.intervals) == (3, [10, 60, 300])
    assert retry_policy({"ALERT_RETRY_INTERVALS": "0, 1"}).intervals == [0, 1]


def test_alerts_page_lists_deliveries_newest_first_for_ops_viewers(app, client, factory, drain, webhook):
    configure(app, webhook=webhook)
    webhook.statuses = [500]
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    factory.platform_user(email="console@example.test", password="console-password-1",
                          capabilities=["platform.access_system_panel", "platform.console.view"])
    resp = client.get("/system/ops/alerts")
    assert resp.status_code == 302 and "/system/login" in resp.headers["Location"]

    run_id = run_fanout(app, factory, drain)
    login(client, "system", "console@example.test", "console-password-1")
    assert client.get("/system/ops/alerts").status_code == 403
    assert "/system/ops/alerts" not in client.get("/system/").get_data(as_text=True)  # no nav link

    other = app.test_client()
    login(other, "system", "ops@example.test", "ops-password-1")
    page = other.get("/system/ops/alerts")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = deliveries(app, run_id)
    ids = [int(x) for x in re.findall(r'data-delivery="(\d+)"', html)]
    assert ids == sorted((r.id for r in rows.values()), reverse=True)
    assert f'href="/system/ops/runs/{run_id}"' in html
    assert 'data-status="failed"' in html and "badge-bad" in html and "webhook: HTTP 500" in html
    assert 'data-status="sent"' in html and "badge-ok" in html
    assert WEBHOOK_TOKEN not in html
    assert 'href="/system/ops/alerts"' in other.get("/system/").get_data(as_text=True)  # nav link
    failed_only = other.get("/system/ops/alerts?status=failed").get_data(as_text=True)
    assert 'data-status="sent"' not in failed_only and 'data-status="failed"' in failed_only
