"""The public surface for plugins: everything a plugin may import from the core.

A plugin imports from here (``from tenantpilot.sdk import …``), from ``tenantpilot.api``
(the definitions, re-exported here too) and, in its tests, from ``tenantpilot.testing``.
Nothing else under ``tenantpilot`` is stable; ``tests/test_sdk_surface.py`` fails when a
module under ``plugins/`` or ``examples/`` imports anything else, so the built-in plugins
prove this surface is enough.

What is here, by purpose:

- **definitions** — ``Runbook``, ``OperationType``, ``ControlKey``, ``EventFamily``,
  ``Provider`` and the provider types, ``TenantPage``, ``TenantAction``, ``TenantCapability``, ``WorkspaceAction``,
  ``DashboardWidget``, ``ScheduledJob``, ``TenantJob``/``TenantJobError``, ``hookimpl``;
- **data** — ``db`` (Flask-SQLAlchemy: plugin models subclass ``db.Model``) and the core
  models a plugin may read: ``Tenant``, ``Workspace``, ``Membership``, ``User``,
  ``OperationRun``, ``AuditLog``, ``ProviderConnection``; ``utcnow`` (naive UTC, the clock
  every stored time uses; tests can move it), ``iso_utc`` (ISO 8601 with offset, for exports);
- **starting work** — ``start_operation`` (the one start seam), ``Scope``, ``Actor``,
  ``StartResult``, ``evaluate_control`` / ``ControlDecision``;
- **recording** — ``record_audit`` (append-only audit log), ``record_event`` (product
  telemetry, after the action committed), ``seed_demo_events``;
- **providers** — ``provider_client``, ``provider_connection``, ``provider_of``,
  ``registered_providers``, ``validate_provider_settings``, ``save_provider_connection``,
  ``check_provider_connection``;
- **web** — ``tenant_required`` / ``platform_required`` (page decorators of the two
  planes), ``SafeForm``, ``EmptyForm``,
  ``BoundedIntegerField``, ``coerce_id``, ``arg_int``, ``form_text``, ``parse_int``,
  ``csv_cell`` / ``csv_text``, ``claim_submission`` / ``remember_submission`` / ``AlreadySubmitted``
  (double-submit protection), ``safe_message`` / ``safe_reason`` (text safe to show);
- **API** — ``ApiBlueprint`` (flask-smorest's blueprint: its operations join the plane's
  OpenAPI document; return them from ``tenantpilot_register_api_blueprints``),
  ``api_problem`` / ``api_field_errors`` / ``api_refuse_unstarted`` (RFC 9457 answers), ``ApiText`` / ``ApiId``
  (marshmallow fields that refuse control characters / stay in the id range),
  ``RunSummarySchema`` / ``run_summary`` (a run as every endpoint shows it);
- **artifacts** — ``put_artifact`` / ``artifact_info`` / ``stream_artifact`` /
  ``send_artifact`` / ``delete_artifacts`` (blobs every process can reach: the database, or
  an S3 bucket when configured; ``ArtifactInfo``, ``ArtifactMissing``, ``ArtifactStoreError``);
- **settings** — ``Setting`` (a definition) and ``setting(name)`` (its value);
- **CLI** — ``finish_embedded_jobs`` (a command run in embedded mode waits for its jobs).
"""
from __future__ import annotations

from . import artifacts as _artifacts
from . import audit as _audit
from . import controls as _controls
from . import idempotency as _idempotency
from . import providers as _providers
from . import seam as _seam
from . import telemetry as _telemetry
from .actors import Actor
from .artifacts import ArtifactInfo, ArtifactMissing, ArtifactStoreError
from .api import (CONTROL_SCOPES, CORE_SUMMARY_KEYS, REASON_CODES, SCOPES, SOURCES, TENANT_STATUSES, TENANT_SURFACES,
                  ControlKey, DashboardWidget, DefinitionError, EventFamily, OperationType,
                  PolicyRecord, Provider, ProviderClient, ProviderConnectionInfo, ProviderError,
                  ProviderField, RoleAssignment, Runbook, ScheduledJob, Setting, TenantAction,
                  TenantCapability, TenantJob, TenantJobError, TenantPage, WorkspaceAction)
from .controls import ControlDecision
from .extensions import db
from .hookspecs import hookimpl
from .idempotency import AlreadySubmitted
from .models import AuditLog, Membership, OperationRun, ProviderConnection, Tenant, User, Workspace
from .planes import platform_required, tenant_required
from .runs import Scope
from .sanitize import safe_message, safe_reason
from .seam import StartResult
from .timeutil import iso_utc, timestamp, utcnow
from .web.api_schemas import Id as ApiId
from .web.api_schemas import RunSummarySchema, run_summary
from .web.api_schemas import Text as ApiText
from .web.apiv1 import Blueprint as ApiBlueprint
from .web.forms import EmptyForm
from .web.inputs import BoundedIntegerField, SafeForm, arg_int, coerce_id, csv_cell, csv_text, form_text, parse_int

# Thin functions, not aliases: each looks its target up when called, so the core can
# change (or a test can patch) the implementation behind a stable name.


def start_operation(operation_type: str, **kwargs) -> StartResult:
    """Start an operation through the start seam (capabilities, controls, scope lock,
    idempotency, enqueue); see ``tenantpilot.seam.start`` for the arguments."""
    return _seam.start(operation_type, **kwargs)


def evaluate_control(control_key: str | None, workspace_id: int | None = None) -> ControlDecision:
    """Whether a control key is paused for a workspace (or globally)."""
    return _controls.evaluate(control_key, workspace_id)


def record_audit(action: str, **kwargs):
    """Write one append-only audit event with the caller's transaction (spooled if the
    database refuses); see ``tenantpilot.audit.record``."""
    return _audit.record(action, **kwargs)


def record_event(event_name: str, **kwargs) -> bool:
    """Record one product-telemetry event of a registered family, after the action
    committed; never raises. See ``tenantpilot.telemetry.record``."""
    return _telemetry.record(event_name, **kwargs)


def seed_demo_events(*args, **kwargs):
    """Demo telemetry for ``tenantpilot_seed_demo``."""
    return _telemetry.seed_demo_events(*args, **kwargs)


def provider_client(tenant_id: int) -> ProviderClient:
    """The provider client of a tenant's saved connection (raises ``ProviderError``)."""
    return _providers.client_for(tenant_id)


def provider_connection(tenant_id: int) -> ProviderConnection | None:
    return _providers.connection_for(tenant_id)


def provider_of(tenant_id: int) -> Provider | None:
    """The registered provider a tenant is connected with, if any."""
    return _providers.provider_for(tenant_id)


def registered_providers() -> dict[str, Provider]:
    return _providers.registered()


def validate_provider_settings(provider: Provider, values: dict[str, str]) -> dict[str, str]:
    """Field errors of a provider settings form ({} when valid)."""
    return _providers.validate_settings(provider, values)


def save_provider_connection(tenant: Tenant, provider: Provider, values: dict[str, str], actor: Actor):
    """Save (and audit) a tenant's provider connection; commits."""
    return _providers.save_connection(tenant, provider, values, actor)


def check_provider_connection(tenant_id: int):
    """Ask the provider whether the connection works; stores its health."""
    return _providers.check_connection(tenant_id)


def claim_submission(scope: str) -> str | None:
    """Claim this form's idempotency token (raises ``AlreadySubmitted`` on a resubmit)."""
    return _idempotency.claim(scope)


def remember_submission(key: str | None, result_url: str | None) -> None:
    """Where a claimed submission led, for the answer to a resubmit."""
    _idempotency.remember(key, result_url)


def api_problem(status: int, slug: str | None = None, title: str | None = None, detail: str = "", **extra):
    """Answer an API request with an ``application/problem+json`` document (raises):
    ``slug`` becomes the stable ``type`` (``urn:tenantpilot:problem:<slug>``)."""
    from .web.apiv1 import problem

    problem(status, slug, title, detail, **extra)


def api_refuse_unstarted(result: StartResult) -> None:
    """Answer an API request whose ``start_operation`` started nothing (paused → 409
    ``paused`` with title and reason, 403, 404, 400, queue down → 503; raises). Returns
    for a started, deduped or scope-busy result."""
    from .web.api_runbooks import refuse_unstarted

    refuse_unstarted(result)


def api_field_errors(errors: dict):
    """Answer 422 naming each field (``{"field": "message"}``; raises)."""
    from .web.apiv1 import field_errors

    field_errors(errors)


def put_artifact(source, *, name: str, content_type: str = "application/octet-stream", owner: str | None = None,
                 expires_at=None) -> int:
    """Store a blob (bytes, a binary file object or an iterable of bytes) where every
    process can read it; returns its id. Written with the caller's transaction (commit to
    keep it). ``owner``: a reference of yours, e.g. ``"review_pack:12"``; ``expires_at``:
    the core deletes it after then. See ``tenantpilot.artifacts``."""
    return _artifacts.put(source, name=name, content_type=content_type, owner=owner, expires_at=expires_at)


def artifact_info(artifact_id: int | None) -> ArtifactInfo | None:
    """Name, content type, size, sha256, owner, times of an artifact; None if there is none."""
    return _artifacts.info(artifact_id)


def stream_artifact(artifact_id: int):
    """An artifact's bytes as an iterator of chunks (``ArtifactMissing`` if there is none)."""
    return _artifacts.stream(artifact_id)


def send_artifact(artifact_id: int, *, download_name: str | None = None, cache_control: str = "private, no-store"):
    """A Flask response streaming the artifact as an attachment (Content-Length, sha256
    ETag); raises ``ArtifactMissing``."""
    return _artifacts.send(artifact_id, download_name=download_name, cache_control=cache_control)


def delete_artifacts(artifact_ids) -> int:
    """Delete these artifacts and commit (bucket objects after the commit); returns how many."""
    return _artifacts.delete_many(artifact_ids)


def setting(name: str):
    """A registered plugin setting's value (``api.Setting``): the app config, else the
    environment (parsed), else its default."""
    from .settings import setting_value

    return setting_value(name)


def finish_embedded_jobs(app) -> None:
    """In embedded mode (no Redis), run queued jobs before a CLI command exits."""
    from .queue import drain_embedded

    drain_embedded(app)


__all__ = [
    "ApiBlueprint", "ApiId", "ApiText", "RunSummarySchema", "api_field_errors", "api_problem",
    "api_refuse_unstarted", "run_summary",
    "ArtifactInfo", "ArtifactMissing", "ArtifactStoreError", "artifact_info", "delete_artifacts", "put_artifact",
    "send_artifact", "stream_artifact",
    "Actor", "AlreadySubmitted", "AuditLog", "BoundedIntegerField", "CONTROL_SCOPES", "CORE_SUMMARY_KEYS",
    "ControlDecision", "ControlKey", "DashboardWidget", "DefinitionError", "EmptyForm", "EventFamily",
    "Membership", "OperationRun", "OperationType", "PolicyRecord", "Provider", "ProviderClient",
    "ProviderConnection", "ProviderConnectionInfo", "ProviderError", "ProviderField", "REASON_CODES",
    "RoleAssignment", "Runbook", "SCOPES", "SOURCES", "SafeForm", "ScheduledJob", "Scope", "Setting",
    "StartResult", "TENANT_STATUSES", "TENANT_SURFACES", "Tenant", "TenantAction", "TenantCapability",
    "TenantJob", "TenantJobError", "TenantPage", "User", "Workspace", "WorkspaceAction", "arg_int",
    "check_provider_connection", "claim_submission", "coerce_id", "csv_cell", "csv_text", "db",
    "evaluate_control", "finish_embedded_jobs", "form_text", "hookimpl", "iso_utc", "parse_int",
    "platform_required", "provider_client", "provider_connection", "provider_of", "record_audit",
    "record_event", "registered_providers", "remember_submission", "safe_message", "safe_reason",
    "save_provider_connection", "seed_demo_events", "setting", "start_operation", "tenant_required",
    "timestamp", "utcnow", "validate_provider_settings",
]
