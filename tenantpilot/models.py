"""Core tables: identities, the operation-run ledger, audit, notifications, alerts.

Domain tables belong to plugins. Status columns of runs are written only by
tenantpilot.runs (service-owned transitions).
"""
from __future__ import annotations

from flask_login import UserMixin
from sqlalchemy import JSON, Index, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .capabilities import role_capabilities
from .extensions import db
from .timeutil import utcnow

ACTIVE_STATUSES = ("queued", "running")
_ACTIVE_SQL = "status IN ('queued', 'running')"


class Workspace(db.Model):
    __tablename__ = "workspaces"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(db.String(200))
    slug: Mapped[str] = mapped_column(db.String(100), unique=True)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    tenants = relationship("Tenant", back_populates="workspace", order_by="Tenant.name")


class Tenant(db.Model):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(db.String(200))
    external_id: Mapped[str] = mapped_column(db.String(64), unique=True)  # Entra tenant GUID
    status: Mapped[str] = mapped_column(db.String(20), default="active")  # active | onboarding | archived
    # Our own platform tenant(s) never belong to the runbook universe.
    is_platform: Mapped[bool] = mapped_column(default=False)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    workspace = relationship("Workspace", back_populates="tenants")


class PasswordMixin:
    """Password hashing shared by both kinds of people (werkzeug's scrypt)."""

    password_hash: Mapped[str]

    def set_password(self, password: str) -> None:
        """Also stamps the change: sessions created before it stop working (sessions.py),
        whichever code path changed the password."""
        self.password_hash = generate_password_hash(password)
        self.password_changed_at = utcnow()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class User(PasswordMixin, UserMixin, db.Model):
    """A tenant-plane person (customer admin)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(db.String(255), unique=True)
    name: Mapped[str] = mapped_column(db.String(200))
    password_hash: Mapped[str] = mapped_column(db.String(255))
    password_changed_at = mapped_column(db.DateTime, nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    memberships = relationship("Membership", back_populates="user")

    plane = "admin"

    def get_id(self) -> str:
        return f"admin:{self.id}"

    def membership_for(self, workspace_id: int) -> "Membership | None":
        return db.session.execute(
            db.select(Membership).filter_by(user_id=self.id, workspace_id=workspace_id)
        ).scalar_one_or_none()


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "workspace_id", name="uq_memberships_user_workspace"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("users.id"), index=True)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"), index=True)
    role: Mapped[str] = mapped_column(db.String(20))  # owner | manager | operator | readonly
    user = relationship("User", back_populates="memberships")
    workspace = relationship("Workspace")

    @property
    def capabilities(self) -> frozenset[str]:
        return role_capabilities(self.role)


class PlatformUser(PasswordMixin, UserMixin, db.Model):
    """A /system person with an explicit capability list."""

    __tablename__ = "platform_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(db.String(255), unique=True)
    name: Mapped[str] = mapped_column(db.String(200))
    password_hash: Mapped[str] = mapped_column(db.String(255))
    password_changed_at = mapped_column(db.DateTime, nullable=True)
    capabilities: Mapped[list] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)

    plane = "system"

    def get_id(self) -> str:
        return f"system:{self.id}"

    def can(self, *capabilities: str) -> bool:
        held = set(self.capabilities or ())
        return self.is_active and all(c in held for c in capabilities)


class AuthSession(db.Model):
    """A signed-in browser session of either plane, checked on every request, so that
    sign-out, a password change, deactivation or "sign out everywhere" end it at once
    (the cookie only carries the random session id; the id's SHA-256 is stored)."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_plane_user", "plane", "user_id"),)
    id: Mapped[str] = mapped_column(db.String(64), primary_key=True)  # sha256 hex of the cookie's token
    plane: Mapped[str] = mapped_column(db.String(10))  # system | admin
    user_id: Mapped[int] = mapped_column()
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    last_seen_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    revoked_at = mapped_column(db.DateTime, nullable=True)
    ip: Mapped[str | None] = mapped_column(db.String(64))
    user_agent: Mapped[str | None] = mapped_column(db.String(200))


class ApiToken(db.Model):
    """A bearer token of either plane (SPEC 3.4's API caller). Only the SHA-256 of the
    secret is kept (the secret is 256 random bits, so a slow hash buys nothing); the
    token acts as its owner with at most ``capabilities``, checked live against what the
    owner holds on every request."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_plane_user", "plane", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plane: Mapped[str] = mapped_column(db.String(10))  # system | admin
    user_id: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(db.String(100))
    token_hash: Mapped[str] = mapped_column(db.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(db.String(16))  # shown in lists, to tell tokens apart
    capabilities: Mapped[list] = mapped_column(JSON, default=list)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(db.DateTime, nullable=False)
    revoked_at = mapped_column(db.DateTime, nullable=True)
    last_used_at = mapped_column(db.DateTime, nullable=True)
    last_used_ip: Mapped[str | None] = mapped_column(db.String(64))


class BreakGlassSession(db.Model):
    __tablename__ = "break_glass_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    platform_user_id: Mapped[int] = mapped_column(db.ForeignKey("platform_users.id"), index=True)
    reason: Mapped[str] = mapped_column(db.String(500))
    started_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(db.DateTime, nullable=False)
    ended_at = mapped_column(db.DateTime, nullable=True)

    def is_active(self, now=None) -> bool:
        now = now or utcnow()
        return self.ended_at is None and self.expires_at > now


class OperationRun(db.Model):
    """The one execution ledger (SPEC 2)."""

    __tablename__ = "operation_runs"
    __table_args__ = (
        # Idempotent start: one active run per identity, enforced by the database.
        Index(
            "uq_operation_runs_active_identity",
            "run_identity_hash",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        # Scope lock: one active all-tenants run per operation type.
        Index(
            "uq_operation_runs_active_scope_lock",
            "scope_lock",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL + " AND scope_lock IS NOT NULL"),
            sqlite_where=text(_ACTIVE_SQL + " AND scope_lock IS NOT NULL"),
        ),
        # Keyset pagination, newest first, with common filters.
        Index("ix_operation_runs_created_id", "created_at", "id"),
        Index("ix_operation_runs_type_created", "type", "created_at"),
        Index("ix_operation_runs_status_created", "status", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(db.ForeignKey("workspaces.id"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(db.ForeignKey("tenants.id"), index=True)
    type: Mapped[str] = mapped_column(db.String(100))
    status: Mapped[str] = mapped_column(db.String(20), default="queued")
    outcome: Mapped[str] = mapped_column(db.String(30), default="pending")
    initiator_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"))
    initiator_platform_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("platform_users.id"))
    initiator_name: Mapped[str | None] = mapped_column(db.String(200))
    run_identity_hash: Mapped[str] = mapped_column(db.String(64))
    scope_lock: Mapped[str | None] = mapped_column(db.String(200))
    summary_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    failure_summary: Mapped[list] = mapped_column(JSON, default=list)
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    # Tenant progress, updated atomically by jobs; done == total completes the run.
    tenants_total: Mapped[int] = mapped_column(default=0)
    tenants_done: Mapped[int] = mapped_column(default=0)
    tenants_failed: Mapped[int] = mapped_column(default=0)
    tenants_skipped: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    parent_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    started_at = mapped_column(db.DateTime, nullable=True)
    completed_at = mapped_column(db.DateTime, nullable=True)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def progress_percent(self) -> int:
        if not self.tenants_total:
            return 100 if self.status == "completed" else 0
        return int(100 * self.tenants_done / self.tenants_total)


class OperationRunTenant(db.Model):
    """Per-tenant result row of a run: the unit of isolation and of exactly-once counting."""

    __tablename__ = "operation_run_tenants"
    __table_args__ = (
        Index("ix_operation_run_tenants_run_status", "run_id", "status"),
        # Runs list filtered by tenant, newest first (measured: 881 ms → ~2 ms at 1M runs).
        Index("ix_operation_run_tenants_tenant_run", "tenant_id", "run_id"),
        # Small: only rows settled but not yet folded into the run's counters.
        Index("ix_operation_run_tenants_unaccounted", "run_id",
              postgresql_where=text("NOT accounted"), sqlite_where=text("NOT accounted")),
    )
    run_id: Mapped[int] = mapped_column(db.ForeignKey("operation_runs.id"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"), primary_key=True)
    # pending -> running -> succeeded | failed | skipped ; pending -> cancelled
    status: Mapped[str] = mapped_column(db.String(20), default="pending")
    job_id: Mapped[str | None] = mapped_column(db.String(100))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    reason_code: Mapped[str | None] = mapped_column(db.String(60))
    message: Mapped[str | None] = mapped_column(db.String(300))
    # Settled rows are folded into the run's counters once, in batches (runs.account).
    accounted: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    started_at = mapped_column(db.DateTime, nullable=True)
    finished_at = mapped_column(db.DateTime, nullable=True)


class AuditLog(db.Model):
    """Append-only (SPEC 8): no code path updates or deletes; a trigger enforces it too."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_recorded_id", "recorded_at", "id"),
        Index("ix_audit_logs_action_recorded", "action", "recorded_at"),
        Index("ix_audit_logs_ws_tenant_recorded", "workspace_id", "tenant_id", "recorded_at"),
        Index("uq_audit_logs_event_uid", "event_uid", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(db.String(120))
    actor_type: Mapped[str] = mapped_column(db.String(20))  # human | platform | system
    actor_id: Mapped[int | None] = mapped_column()
    actor_name: Mapped[str | None] = mapped_column(db.String(200))
    actor_email: Mapped[str | None] = mapped_column(db.String(255))
    workspace_id: Mapped[int | None] = mapped_column()
    tenant_id: Mapped[int | None] = mapped_column()
    target_type: Mapped[str | None] = mapped_column(db.String(60))
    target_id: Mapped[str | None] = mapped_column(db.String(100))
    target_label: Mapped[str | None] = mapped_column(db.String(200))
    status: Mapped[str] = mapped_column(db.String(20), default="success")  # success | blocked | failed
    summary: Mapped[str | None] = mapped_column(db.String(500))
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(db.String(64))
    user_agent: Mapped[str | None] = mapped_column(db.String(300))
    recorded_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    # Set by the recorder; a spooled row is replayed by it at most once (tenantpilot.spool).
    event_uid: Mapped[str | None] = mapped_column(db.String(32))


@event.listens_for(AuditLog, "before_update")
@event.listens_for(AuditLog, "before_delete")
def _audit_is_append_only(mapper, connection, target):
    raise RuntimeError("audit_logs is append-only")


class Notification(db.Model):
    """In-app notification for one person of either plane."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"), index=True)
    platform_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("platform_users.id"), index=True)
    kind: Mapped[str] = mapped_column(db.String(60))
    title: Mapped[str] = mapped_column(db.String(200))
    body: Mapped[str | None] = mapped_column(db.String(500))
    run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"))
    # Where an approval notification leads (tenantpilot.approvals); None otherwise.
    approval_request_id: Mapped[int | None] = mapped_column(db.ForeignKey("approval_requests.id"))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    read_at = mapped_column(db.DateTime, nullable=True)


class ApprovalRequest(db.Model):
    """Four-eyes approval of a runbook start (``tenantpilot.approvals``): the stored
    preflight is the thing approved. Status transitions are conditional UPDATEs in the
    service, so two approvers at once give one run."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_status_created", "status", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    runbook_key: Mapped[str] = mapped_column(db.String(100))
    scope: Mapped[dict] = mapped_column(JSON, default=dict)
    preflight_audit_id: Mapped[int] = mapped_column()
    preflight_result: Mapped[dict] = mapped_column(JSON, default=dict)
    reason_code: Mapped[str] = mapped_column(db.String(40))
    reason_text: Mapped[str] = mapped_column(db.String(500), default="")
    requester_id: Mapped[int] = mapped_column(db.ForeignKey("platform_users.id"), index=True)
    status: Mapped[str] = mapped_column(db.String(20), default="pending")  # pending|approved|rejected|expired|cancelled
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False, index=True)
    expires_at = mapped_column(db.DateTime, nullable=False)
    decided_at = mapped_column(db.DateTime, nullable=True)
    decided_by_id: Mapped[int | None] = mapped_column(db.ForeignKey("platform_users.id"))
    decision_reason: Mapped[str | None] = mapped_column(db.String(500))
    run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"))
    source: Mapped[str] = mapped_column(db.String(20), default="system_ui")  # system_ui | cli | api
    requester = relationship("PlatformUser", foreign_keys=[requester_id])
    decided_by = relationship("PlatformUser", foreign_keys=[decided_by_id])


class AlertDelivery(db.Model):
    """One alert to one destination; delivered by an RQ job with retries."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(db.String(80))  # e.g. operations.run.failed
    destination_type: Mapped[str] = mapped_column(db.String(20))  # in_app | email | webhook
    destination: Mapped[str | None] = mapped_column(db.String(300))
    run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"), index=True)
    status: Mapped[str] = mapped_column(db.String(20), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(db.String(300))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    sent_at = mapped_column(db.DateTime, nullable=True)


class OutboxMessage(db.Model):
    """One after-commit effect to deliver (tenantpilot.outbox): written in the transaction
    whose commit makes it due, delivered (at least once) by that process or the scheduler."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("topic", "run_id", "plugin", name="uq_outbox_topic_run_plugin"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(db.String(40))  # run_completed
    run_id: Mapped[int] = mapped_column(db.ForeignKey("operation_runs.id"), index=True)
    plugin: Mapped[str] = mapped_column(db.String(120))  # the hook implementation's plugin name
    status: Mapped[str] = mapped_column(db.String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(db.String(200))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    next_attempt_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    claimed_until = mapped_column(db.DateTime, nullable=True)
    delivered_at = mapped_column(db.DateTime, nullable=True)


class IdempotencyKey(db.Model):
    """A used confirm-form token (tenantpilot.idempotency): a second submit finds it."""

    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(db.String(64), primary_key=True)  # sha256 of plane, person, token
    scope: Mapped[str] = mapped_column(db.String(80))
    result_url: Mapped[str | None] = mapped_column(db.String(300))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False, index=True)


class ScheduledJobState(db.Model):
    """When each periodic job is next due; claimed with a conditional UPDATE so two
    scheduler processes never run the same slot twice."""

    __tablename__ = "scheduled_job_state"
    name: Mapped[str] = mapped_column(db.String(100), primary_key=True)
    next_run_at = mapped_column(db.DateTime, nullable=False)
    last_run_at = mapped_column(db.DateTime, nullable=True)


class OperationalControlActivation(db.Model):
    """An active pause of a control key (SPEC 4). Enabled = no active row; resume deletes."""

    __tablename__ = "operational_control_activations"
    __table_args__ = (
        Index("uq_control_activation_global", "control_key", unique=True,
              postgresql_where=text("scope_type = 'global'"), sqlite_where=text("scope_type = 'global'")),
        Index("uq_control_activation_workspace", "control_key", "workspace_id", unique=True,
              postgresql_where=text("scope_type = 'workspace'"), sqlite_where=text("scope_type = 'workspace'")),
        Index("ix_control_activation_eval", "control_key", "scope_type", "workspace_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    control_key: Mapped[str] = mapped_column(db.String(100))
    scope_type: Mapped[str] = mapped_column(db.String(20))  # global | workspace
    workspace_id: Mapped[int | None] = mapped_column(db.ForeignKey("workspaces.id"))
    reason_text: Mapped[str] = mapped_column(db.String(500))
    expires_at = mapped_column(db.DateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(db.ForeignKey("platform_users.id"))
    updated_by: Mapped[int | None] = mapped_column(db.ForeignKey("platform_users.id"))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(db.DateTime, default=utcnow, nullable=False)


class ProviderConnection(db.Model):
    """How the platform reaches one tenant at its vendor (SPEC 5, provider boundary).

    Holds the provider name, its non-secret settings and a *reference* to the secret
    (``env:NAME`` / ``file:/path``): the secret itself is resolved when a client is built
    and is never stored, logged, audited or shown back."""

    __tablename__ = "provider_connections"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"), unique=True)
    provider: Mapped[str] = mapped_column(db.String(60))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    secret_ref: Mapped[str | None] = mapped_column(db.String(300))
    health: Mapped[str] = mapped_column(db.String(20), default="unverified")  # unverified | healthy | failing
    last_checked_at = mapped_column(db.DateTime, nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(db.String(60))
    last_error_message: Mapped[str | None] = mapped_column(db.String(300))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(db.DateTime, default=utcnow, nullable=False)


class ProductUsageEvent(db.Model):
    """One privacy-safe product milestone (SPEC 6): tenant-bound, tokens only. Written
    by tenantpilot.telemetry.record and nothing else; read through the rollups below."""

    __tablename__ = "product_usage_events"
    __table_args__ = (
        Index("ix_product_usage_events_occurred", "occurred_at"),
        Index("ix_product_usage_events_event_occurred", "event_name", "occurred_at"),
        Index("ix_product_usage_events_ws_tenant_occurred", "workspace_id", "tenant_id", "occurred_at"),
        Index("uq_product_usage_events_event_uid", "event_uid", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"))
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    user_id: Mapped[int | None] = mapped_column()
    event_name: Mapped[str] = mapped_column(db.String(120))
    feature_area: Mapped[str] = mapped_column(db.String(60))
    subject_type: Mapped[str | None] = mapped_column(db.String(60))
    subject_id: Mapped[str | None] = mapped_column(db.String(120))
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    occurred_at = mapped_column(db.DateTime, nullable=False)
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    event_uid: Mapped[str | None] = mapped_column(db.String(32))  # replays of a spooled event insert it once


class ProductUsageHourly(db.Model):
    """Events per (hour, event name), maintained in the recording transaction: a 30-day
    summary reads ≤ 720 × families rows instead of millions of events."""

    __tablename__ = "product_usage_hourly"
    bucket_start = mapped_column(db.DateTime, primary_key=True)
    event_name: Mapped[str] = mapped_column(db.String(120), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class ProductUsageWorkspace(db.Model):
    """Each workspace's latest event. Windows always end now, so a workspace is active in
    [now − w, now] exactly when its latest event is at or after now − w: distinct active
    workspaces become one indexed range count."""

    __tablename__ = "product_usage_workspaces"
    __table_args__ = (Index("ix_product_usage_workspaces_last", "last_event_at"),)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"), primary_key=True)
    last_event_at = mapped_column(db.DateTime, nullable=False)


# The artifact store's tables live with its code (tenantpilot.artifacts); imported here so
# every app and migration check sees them with the other core tables.
from .artifacts import Artifact, ArtifactChunk  # noqa: E402,F401
