"""Core plugin: `operations.run.failed` alert deliveries (SPEC 2).

When a run completes ``failed`` or ``partially_succeeded``, one ``AlertDelivery`` row is
created per configured destination and one RQ job per row is enqueued on the
``<prefix>-deliveries`` queue with ``Retry(max=ALERT_RETRY_MAX, interval=ALERT_RETRY_INTERVALS)``:

- ``in_app`` (always): a Notification for every active platform user who may see the
  ops pages (``platform.access_system_panel`` + ``platform.ops.view``);
- ``email`` when ``SMTP_HOST`` and ``ALERT_EMAIL_TO`` are set (smtplib, plain text);
- ``webhook`` when ``ALERT_WEBHOOK_URL`` is set (stdlib urllib, JSON POST, 2xx = sent,
  redirects are not followed).

The payload is built once, at creation, from sanitized fields only: run id, type, label,
outcome, counts, tenant counts, failure reason codes and the path of the run page —
never failure messages, e-mail addresses, secrets, tenant names or stack traces.

Each attempt counts itself first (``attempts`` is committed before anything is sent, so
an attempt killed mid-way still counts), then records ``sent`` + ``sent_at``, or a short
sanitized ``last_error``. The row stays ``pending`` while RQ has retries left; the last
failed attempt leaves it ``failed``. Retries with an interval > 0 go to RQ's
ScheduledJobRegistry and are moved back to the queue by the core scheduled job
``ops.enqueue_scheduled_jobs`` (``tenantpilot.housekeeping``); interval 0 re-enqueues at once.
"""
from __future__ import annotations

import json
import logging
import smtplib
import socket
import urllib.error
import urllib.request
from collections import Counter
from email.message import EmailMessage
from urllib.parse import urlsplit

import redis
from flask import current_app
from flask_babel import ngettext
from rq import Callback, Queue, Retry, get_current_job
from sqlalchemy import select

from . import words
from .extensions import db
from .hookspecs import hookimpl
from .models import AlertDelivery, Notification, OperationRun, PlatformUser
from .sanitize import REASON_RE, safe_message, safe_reason
from .timeutil import iso_utc, utcnow

log = logging.getLogger("tenantpilot.alerts")

EVENT = "operations.run.failed"
ALERTING_OUTCOMES = ("failed", "partially_succeeded")
ALERT_RETRY_MAX = 3  # retries after the first attempt: at most 4 attempts per delivery
WEBHOOK_TIMEOUT = 10  # seconds, connect + read
SMTP_TIMEOUT = 10
IN_APP_AUDIENCE = ("platform.access_system_panel", "platform.ops.view")
MAX_ERROR = 200  # characters of last_error


class DeliveryFailed(Exception):
    """One attempt failed; the message is already sanitized and recorded on the row."""


# --- creation (run completion hook) ---------------------------------------------------


@hookimpl
def tenantpilot_run_completed(run):
    if run.outcome not in ALERTING_OUTCOMES:
        return
    if db.session.scalar(select(AlertDelivery.id).where(AlertDelivery.run_id == run.id,
                                                        AlertDelivery.event == EVENT).limit(1)):
        return  # created before (the outbox delivers at least once)
    create_deliveries(run)


def destinations(config) -> list[tuple[str, str]]:
    """(destination_type, destination label) for each configured destination. The label
    is what the row records: never a webhook path or query (they often carry tokens)."""
    found = [("in_app", "platform.ops.view")]
    if config.get("SMTP_HOST") and config.get("ALERT_EMAIL_TO"):
        found.append(("email", ", ".join(_recipients(config))[:300]))
    if config.get("ALERT_WEBHOOK_URL"):
        found.append(("webhook", _webhook_label(config["ALERT_WEBHOOK_URL"])))
    return found


def create_deliveries(run: OperationRun) -> list[int]:
    """One row per destination, committed, then one RQ job each. Returns the row ids."""
    payload = build_payload(run)
    rows = [AlertDelivery(event=EVENT, destination_type=kind, destination=label, run_id=run.id,
                          status="pending", attempts=0, payload=payload)
            for kind, label in destinations(current_app.config)]
    db.session.add_all(rows)
    db.session.commit()
    ids = [r.id for r in rows]
    enqueue_deliveries(ids)
    return ids


def create_message_deliveries(event: str, payload: dict) -> list[int]:
    """E-mail/webhook deliveries of a message that is not a run outcome (e.g. a waiting
    approval request, ``tenantpilot.approvals``). Its caller writes the in-app
    notifications itself (they go to specific people). ``payload`` must already be
    sanitized and carry ``title`` and ``path``."""
    rows = [AlertDelivery(event=event, destination_type=kind, destination=label, run_id=None,
                          status="pending", attempts=0, payload=payload)
            for kind, label in destinations(current_app.config) if kind != "in_app"]
    if not rows:
        return []
    db.session.add_all(rows)
    db.session.commit()
    ids = [r.id for r in rows]
    enqueue_deliveries(ids)
    return ids


def retry_intervals(config) -> list[int]:
    """ALERT_RETRY_INTERVALS as seconds: a list, or a comma-separated string ("10,60,300").
    RQ uses the i-th interval before the i-th retry (the last one repeats)."""
    value = config.get("ALERT_RETRY_INTERVALS", "10,60,300")
    items = value.split(",") if isinstance(value, str) else list(value)
    return [max(0, int(str(v).strip())) for v in items if str(v).strip()] or [0]


def retry_policy(config) -> Retry:
    return Retry(max=ALERT_RETRY_MAX, interval=retry_intervals(config))


def job_id_for(delivery_id: int) -> str:
    return f"{current_app.config['TENANTPILOT_QUEUE_PREFIX']}-alert-{delivery_id}"


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    """Enqueue one delivery job per row. If the queue is unreachable the rows are marked
    failed at once (``queue_unavailable``) rather than left pending silently."""
    from .queue import ensure_embedded_worker, get_queue

    app = current_app._get_current_object()
    q = get_queue("deliveries")
    try:
        q.enqueue_many([
            Queue.prepare_data(deliver, args=(delivery_id,), job_id=job_id_for(delivery_id),
                           retry=retry_policy(app.config), timeout=60, result_ttl=86400,
                           failure_ttl=7 * 86400, on_failure=Callback(handle_delivery_job_failure),
                           description=f"alert delivery {delivery_id}")
            for delivery_id in delivery_ids
        ])
    except redis.RedisError as exc:
        log.error("alert deliveries %s not enqueued: %s", delivery_ids, type(exc).__name__)
        for row in db.session.scalars(select(AlertDelivery).where(AlertDelivery.id.in_(delivery_ids))):
            row.status, row.last_error = "failed", "queue_unavailable: the delivery job could not be enqueued."
        db.session.commit()
        return
    ensure_embedded_worker(app)


def build_payload(run: OperationRun) -> dict:
    """The sanitized alert body shared by every destination (see module docstring)."""
    op = current_app.extensions["tenantpilot"].registry.operation_types.get(run.type)
    label = op.label if op is not None else (run.context or {}).get("operation_label") or run.type
    reasons = Counter(safe_reason((f or {}).get("reason_code")) for f in (run.failure_summary or []))
    counts = {k: v for k, v in (run.summary_counts or {}).items()
              if isinstance(k, str) and REASON_RE.match(k) and isinstance(v, int) and not isinstance(v, bool)}
    return {
        "event": EVENT,
        "run_id": run.id,
        "type": safe_message(run.type, 100),
        "label": safe_message(label, 120),
        "outcome": run.outcome,
        "completed_at": iso_utc(run.completed_at) or None,
        "counts": counts,
        "tenants": {"total": run.tenants_total, "done": run.tenants_done,
                    "failed": run.tenants_failed, "skipped": run.tenants_skipped},
        "failure_reasons": dict(sorted(reasons.items())),
        "link": f"/system/ops/runs/{run.id}",
    }


# --- delivery (RQ job) ----------------------------------------------------------------


def deliver(delivery_id: int) -> str:
    """RQ job: one attempt at one delivery. Raises DeliveryFailed so RQ retries."""
    row = db.session.execute(
        select(AlertDelivery).where(AlertDelivery.id == delivery_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        db.session.rollback()
        return "missing"
    if row.status == "sent":  # idempotent: a duplicate or requeued job sends nothing twice
        db.session.rollback()
        return "already sent"
    row.attempts += 1
    if row.status == "failed":  # requeued by hand after the last retry: try again
        row.status = "pending"
    kind, payload = row.destination_type, dict(row.payload or {})
    db.session.commit()  # the attempt counts even if this process dies while sending

    try:
        if kind == "in_app":
            _deliver_in_app(delivery_id, payload)  # commits its notifications with the status
            return "sent"
        SENDERS[kind](current_app.config, payload)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried by RQ
        db.session.rollback()
        error = describe_error(kind, exc)
        final = _is_last_attempt()
        _record(delivery_id, status="failed" if final else "pending", last_error=error)
        log.warning("alert delivery %s (%s) failed: %s%s", delivery_id, kind, error, "" if not final else " (final)")
        raise DeliveryFailed(error) from None
    _record(delivery_id, status="sent", sent_at=utcnow())
    return "sent"


def _is_last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _record(delivery_id: int, **values) -> None:
    row = db.session.get(AlertDelivery, delivery_id)
    for key, value in values.items():
        setattr(row, key, value)
    db.session.commit()


def handle_delivery_job_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback. DeliveryFailed was recorded by the job itself; anything else
    (a timeout, a killed worker found by the reaper) is recorded here."""
    if isinstance(exc_value, DeliveryFailed) or (exc_type and issubclass(exc_type, DeliveryFailed)):
        return
    db.session.rollback()
    delivery_id = job.args[0]
    row = db.session.get(AlertDelivery, delivery_id)
    if row is None or row.status == "sent":
        return
    row.last_error = safe_message(f"job_failed: {exc_type.__name__ if exc_type else 'unknown error'}", MAX_ERROR)
    if not job.retries_left:
        row.status = "failed"
    db.session.commit()


def _deliver_in_app(delivery_id: int, payload: dict) -> None:
    users = [u for u in db.session.scalars(select(PlatformUser).where(PlatformUser.is_active.is_(True)))
             if u.can(*IN_APP_AUDIENCE)]
    tenants = payload.get("tenants") or {}
    for user in users:
        db.session.add(Notification(
            platform_user_id=user.id, kind=EVENT, run_id=payload.get("run_id"),
            title=safe_message(f"Alert: {subject_line(payload)}", 200),
            body=safe_message(ngettext("%(failed)s of %(count)s tenant failed.",
                                       "%(failed)s of %(count)s tenants failed.", tenants.get("total", 0),
                                       failed=tenants.get("failed", 0), count=tenants.get("total", 0))
                              + f" Reasons: {_reason_text(payload)}.", 500),
        ))
    row = db.session.get(AlertDelivery, delivery_id)
    row.status, row.sent_at = "sent", utcnow()
    db.session.commit()  # notifications and status together: a retry never doubles them


def subject_line(payload: dict) -> str:
    outcome = (payload.get("outcome") or "").replace("_", " ")
    return f"{payload.get('label')} {outcome} (run #{payload.get('run_id')})"


def _reason_text(payload: dict) -> str:
    reasons = payload.get("failure_reasons") or {}
    return ", ".join(f"{code} ×{n}" for code, n in reasons.items()) or "none recorded"


def render_text(payload: dict) -> str:
    """Plain-text body (e-mail)."""
    if "run_id" not in payload:  # a message (create_message_deliveries), not a run outcome
        return f"TenantPilot Ops: {payload.get('event')}\n\n{payload.get('title')}\n\nOpen: {payload.get('path')}\n"
    tenants = payload.get("tenants") or {}
    counts = words.summary_rows(payload.get("type"), payload.get("counts") or {})  # labels, not keys
    lines = [
        f"TenantPilot Ops alert: {payload.get('event')}",
        "",
        f"Operation: {payload.get('label')} ({payload.get('type')})",
        f"Run: #{payload.get('run_id')}",
        f"Outcome: {(payload.get('outcome') or '').replace('_', ' ')}",
        f"Completed at: {payload.get('completed_at') or '-'}",
        f"Tenants: {tenants.get('total', 0)} total, {tenants.get('failed', 0)} failed, "
        f"{tenants.get('skipped', 0)} skipped",
        f"Counts: {', '.join(f'{label} {value}' for _, label, value in counts) or '-'}",
        f"Failure reasons: {_reason_text(payload)}",
        "",
        f"Run details: {payload.get('link')}",
    ]
    return "\n".join(lines) + "\n"


def send_email(config, payload: dict) -> None:
    if not config.get("SMTP_HOST") or not _recipients(config):
        raise LookupError("not_configured")
    msg = EmailMessage()
    msg["Subject"] = f"[TenantPilot] {payload['title'] if 'run_id' not in payload else subject_line(payload)}"
    msg["From"] = config.get("ALERT_EMAIL_FROM") or "tenantpilot-ops@localhost"
    msg["To"] = ", ".join(_recipients(config))
    msg.set_content(render_text(payload))
    with smtplib.SMTP(config["SMTP_HOST"], int(config.get("SMTP_PORT") or 25), timeout=SMTP_TIMEOUT) as smtp:
        smtp.send_message(msg)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer, not a delivery: it surfaces as HTTPError


def send_webhook(config, payload: dict) -> None:
    url = config.get("ALERT_WEBHOOK_URL")
    if not url:
        raise LookupError("not_configured")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("unsupported URL scheme")
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "TenantPilot-Ops-Alerts/1"},
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=WEBHOOK_TIMEOUT) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "non-2xx", response.headers, None)


SENDERS = {"email": send_email, "webhook": send_webhook}


def describe_error(kind: str, exc: BaseException) -> str:
    """A short, sanitized reason: never a URL, a response body or an e-mail address."""
    if isinstance(exc, urllib.error.HTTPError):
        detail = f"HTTP {exc.code}"
    elif isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        detail = "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else f"unreachable ({_short(reason)})"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        detail = "timed out"
    elif isinstance(exc, smtplib.SMTPResponseException):
        detail = f"SMTP {exc.smtp_code}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "SMTP recipients refused"
    elif isinstance(exc, LookupError) and str(exc) == "not_configured":
        detail = "destination no longer configured"
    elif isinstance(exc, OSError):
        detail = f"unreachable ({_short(exc)})"
    else:
        detail = type(exc).__name__
    return safe_message(f"{kind}: {detail}", MAX_ERROR)


def _short(exc) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__ if isinstance(exc, BaseException) else str(exc)[:60]


def _recipients(config) -> list[str]:
    return [a.strip() for a in (config.get("ALERT_EMAIL_TO") or "").split(",") if a.strip()]


def _webhook_label(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"[:300]
