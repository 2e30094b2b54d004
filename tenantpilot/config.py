"""Configuration from environment variables (12-factor).

Every setting has an embedded default so the app runs with nothing but Python:
SQLite in ./instance and an in-process queue when REDIS_URL is unset.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _int_list(name: str, default: str) -> list[int]:
    value = os.environ.get(name) or default
    return [int(v) for v in value.split(",") if v.strip()]


def from_env(instance_path: str) -> dict:
    """Build the config dict from the process environment."""
    default_db = "sqlite:///" + str(Path(instance_path) / "tenantpilot.sqlite")
    database_url = os.environ.get("DATABASE_URL") or default_db
    # PaaS routers hand out postgres:// URLs; SQLAlchemy wants the psycopg 3 driver named.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    redis_url = os.environ.get("REDIS_URL") or None
    return {
        # None when unset: settle_secret_key decides (a dev key, or a refusal on PostgreSQL).
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "TENANTPILOT_QUEUE_PREFIX": os.environ.get("TENANTPILOT_QUEUE_PREFIX", "tenantpilot"),
        # Tenants per RQ job: amortises the per-job cost while each tenant keeps its own
        # transaction and result row.
        "TENANTPILOT_FANOUT_BATCH_SIZE": _int("TENANTPILOT_FANOUT_BATCH_SIZE", 50),
        # Circuit breaker defaults (a runbook may set its own): after at least N finished
        # tenants, more than this share failed → stop dispatching.
        "TENANTPILOT_CIRCUIT_MIN_TENANTS": _int("TENANTPILOT_CIRCUIT_MIN_TENANTS", 20),
        "TENANTPILOT_CIRCUIT_FAILURE_RATIO": float(os.environ.get("TENANTPILOT_CIRCUIT_FAILURE_RATIO", "0.5")),
        "TENANTPILOT_JOB_TIMEOUT": _int("TENANTPILOT_JOB_TIMEOUT", 600),
        # Workers heartbeat a running job this often; three missed beats and the reaper
        # treats the job as abandoned (its worker died): recovery within about a minute.
        "TENANTPILOT_WORKER_HEARTBEAT_SECONDS": _int("TENANTPILOT_WORKER_HEARTBEAT_SECONDS", 10),
        # Unsettled tenants of a run older than this whose RQ job is gone are recovered.
        "TENANTPILOT_ORPHAN_MIN_AGE": _int("TENANTPILOT_ORPHAN_MIN_AGE", 120),
        # Worker transactions on PostgreSQL commit without waiting for the WAL flush: a
        # tenant's work and its ledger row are one transaction, executors are idempotent,
        # and lost tenants are re-dispatched, so a PostgreSQL crash costs a re-run, not
        # correctness. The transaction that completes a run stays synchronous.
        "TENANTPILOT_WORKER_ASYNC_COMMIT": os.environ.get("TENANTPILOT_WORKER_ASYNC_COMMIT", "1") == "1",
        "TENANTPILOT_STALE_QUEUED_MINUTES": _int("TENANTPILOT_STALE_QUEUED_MINUTES", 15),
        "TENANTPILOT_BREAK_GLASS_MINUTES": _int("TENANTPILOT_BREAK_GLASS_MINUTES", 30),
        # Four-eyes approval: pending requests expire after this; these scope kinds need
        # approval for every runbook, on top of each runbook's own approval_scopes.
        "TENANTPILOT_APPROVAL_EXPIRY_MINUTES": _int("TENANTPILOT_APPROVAL_EXPIRY_MINUTES", 60),
        "TENANTPILOT_APPROVAL_REQUIRED_SCOPES": os.environ.get("TENANTPILOT_APPROVAL_REQUIRED_SCOPES", ""),
        "TENANTPILOT_PRODUCT_USAGE_EVENT_RETENTION_DAYS": _int(
            "TENANTPILOT_PRODUCT_USAGE_EVENT_RETENTION_DAYS", 90
        ),
        # Where file: secret references of provider connections may point (tenantpilot.providers).
        "TENANTPILOT_PROVIDER_SECRETS_DIR": os.environ.get("TENANTPILOT_PROVIDER_SECRETS_DIR", "/run/secrets"),
        # Artifact store (tenantpilot.artifacts): blobs such as review packs live in the
        # database unless a bucket is named; credentials come from the standard AWS_* variables.
        "TENANTPILOT_ARTIFACT_BUCKET": os.environ.get("TENANTPILOT_ARTIFACT_BUCKET") or None,
        "TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL": os.environ.get("TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL") or None,
        "TENANTPILOT_ARTIFACT_S3_REGION": os.environ.get("TENANTPILOT_ARTIFACT_S3_REGION")
        or os.environ.get("AWS_DEFAULT_REGION") or None,
        "TENANTPILOT_ARTIFACT_S3_PREFIX": os.environ.get("TENANTPILOT_ARTIFACT_S3_PREFIX", "artifacts/"),
        "TENANTPILOT_EMBEDDED_WORKER": os.environ.get("TENANTPILOT_EMBEDDED_WORKER", "1") == "1",
        # Failed sign-ins (both planes): per (IP, e-mail), per IP, per e-mail from any IP.
        "TENANTPILOT_LOGIN_RATE_LIMIT": os.environ.get("TENANTPILOT_LOGIN_RATE_LIMIT", "10 per minute"),
        "TENANTPILOT_LOGIN_IP_RATE_LIMIT": os.environ.get("TENANTPILOT_LOGIN_IP_RATE_LIMIT", "30 per minute"),
        "TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT": os.environ.get("TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT", "50 per hour"),
        "TENANTPILOT_API_RATE_LIMIT": os.environ.get("TENANTPILOT_API_RATE_LIMIT", "600 per minute"),
        # Server-side sessions: idle and absolute lifetimes per plane (tenantpilot.sessions).
        "TENANTPILOT_ADMIN_SESSION_IDLE_MINUTES": _int("TENANTPILOT_ADMIN_SESSION_IDLE_MINUTES", 12 * 60),
        "TENANTPILOT_ADMIN_SESSION_MAX_HOURS": _int("TENANTPILOT_ADMIN_SESSION_MAX_HOURS", 7 * 24),
        "TENANTPILOT_SYSTEM_SESSION_IDLE_MINUTES": _int("TENANTPILOT_SYSTEM_SESSION_IDLE_MINUTES", 60),
        "TENANTPILOT_SYSTEM_SESSION_MAX_HOURS": _int("TENANTPILOT_SYSTEM_SESSION_MAX_HOURS", 12),
        # The signed cookie itself expires with the longest absolute lifetime (Flask's
        # default is 31 days); the server-side session decides before that.
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=max(_int("TENANTPILOT_ADMIN_SESSION_MAX_HOURS", 7 * 24),
                                                          _int("TENANTPILOT_SYSTEM_SESSION_MAX_HOURS", 12))),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_KEY_PREFIX": os.environ.get("TENANTPILOT_QUEUE_PREFIX", "tenantpilot") + "-limiter",
        "SMTP_HOST": os.environ.get("SMTP_HOST"),
        "SMTP_PORT": _int("SMTP_PORT", 25),
        "ALERT_EMAIL_TO": os.environ.get("ALERT_EMAIL_TO"),
        "ALERT_WEBHOOK_URL": os.environ.get("ALERT_WEBHOOK_URL"),
        "ALERT_EMAIL_FROM": os.environ.get("ALERT_EMAIL_FROM", "tenantpilot-ops@localhost"),
        # Seconds before each retry of a failed alert delivery (RQ Retry, max 3 retries).
        # Intervals > 0 wait in RQ's scheduled registry until ops.enqueue_scheduled_jobs runs.
        "ALERT_RETRY_INTERVALS": _int_list("ALERT_RETRY_INTERVALS", "10,60,300"),
        # hide_parameters: a database error in the logs never carries the bound values
        # (e-mails typed at login, reasons, tokens).
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "hide_parameters": True},
        "WTF_CSRF_TIME_LIMIT": None,
    }


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


MISSING_SECRET_KEY = (
    "SECRET_KEY is not set. With PostgreSQL (DATABASE_URL) the app runs as several processes, "
    "each with its own disk, so a key generated into one instance folder would sign sessions "
    "and download links that the other web processes reject. Set the same SECRET_KEY in the "
    "environment of every process, e.g. the output of: "
    "python -c 'import secrets; print(secrets.token_hex(32))'. "
    "(Without DATABASE_URL the app uses SQLite and keeps a generated key in the instance folder.)")


def settle_secret_key(config: dict, instance_path: str) -> None:
    """Give the app its signing key. An explicit one (environment or app config) always
    wins. Without one, the zero-install SQLite default keeps a generated key in the
    instance folder; on PostgreSQL that would differ per process (no shared disk on a
    PaaS), so the app refuses to start instead (``ConfigError``)."""
    if config.get("SECRET_KEY"):
        return
    if str(config.get("SQLALCHEMY_DATABASE_URI") or "").startswith("postgresql"):
        raise ConfigError(MISSING_SECRET_KEY)
    config["SECRET_KEY"] = _dev_secret(instance_path)


def _dev_secret(instance_path: str) -> str:
    """A per-install random key kept in the instance folder, so sessions survive restarts
    in the embedded mode without anyone having to invent a secret."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    return key
