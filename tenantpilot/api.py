"""Declarative, frozen definitions that plugins return from registration hooks.

Behaviour lives on these objects (callables as fields), not in more hooks. The registry
validates each one at start-up; a malformed definition fails start-up naming its plugin.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")  # dotted, lower-case
SCOPES = ("all_tenants", "workspace", "single_tenant")
# A tenant is created "onboarding" (a draft, in no fleet run), becomes "active" when
# activated, and "archived" when retired.
TENANT_STATUSES = ("active", "onboarding", "archived")
CONTROL_SCOPES = ("global", "workspace")
SOURCES = ("system_ui", "tenant_ui", "cli", "deploy_hook", "api")
# Summary-count vocabulary of SPEC 2; an operation type may add its own keys.
CORE_SUMMARY_KEYS = ("total", "processed", "updated", "skipped", "failed", "tenants", "items")
# The ledger's own keys count tenants; the rest of the core vocabulary counts items inside
# tenants. Pages show these labels (in this order, the ledger's first) unless an operation
# type's ``summary_labels`` names its items better ("Findings skipped", not "Items skipped").
LEDGER_SUMMARY_LABELS = {"tenants": "Tenants done", "failed": "Tenants failed"}
CORE_SUMMARY_LABELS = {"total": "Items in total", "processed": "Items processed", "updated": "Items updated",
                       "skipped": "Items skipped", "items": "Items"}
REASON_CODES = ("DATA_REPAIR", "INCIDENT", "SUPPORT", "SECURITY")
# Tenant-plane pages that show plugin actions (TenantAction.surfaces).
TENANT_SURFACES = ("tenant_dashboard", "operation_run_viewer")


class DefinitionError(ValueError):
    """A plugin returned a definition that cannot be used."""


class TenantJobError(Exception):
    """Raised by an executor to fail one tenant with a stable reason code and a short,
    safe message (shown to operators; never put secrets, e-mails or payloads in it)."""

    def __init__(self, reason_code: str, message: str = ""):
        super().__init__(message or reason_code)
        self.reason_code = reason_code
        self.message = message


def _require_key(kind: str, key: str) -> None:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise DefinitionError(f"{kind} key {key!r} must be dotted lower-case, e.g. 'findings.lifecycle.backfill'")


def _labels(kind: str, key: str, name: str, value) -> MappingProxyType:
    """A read-only, ordered copy of a key -> label mapping (a dict or (key, label) pairs)."""
    try:
        labels = dict(value.items() if isinstance(value, Mapping) else value)
    except (TypeError, ValueError):
        raise DefinitionError(f"{kind} {key!r}: {name} must be a mapping of key to label") from None
    for k, label in labels.items():
        if not isinstance(k, str) or not isinstance(label, str) or not label.strip():
            raise DefinitionError(f"{kind} {key!r}: {name} must map keys to non-empty labels")
    return MappingProxyType(labels)


def _check_summary_labels(kind: str, definition) -> None:
    labels = _labels(kind, definition.key, "summary_labels", definition.summary_labels)
    object.__setattr__(definition, "summary_labels", labels)
    for k in labels:
        if k in LEDGER_SUMMARY_LABELS:
            raise DefinitionError(f"{kind} {definition.key!r}: summary_labels may not relabel {k!r}: the ledger "
                                  f"counts tenants with it ({LEDGER_SUMMARY_LABELS[k]!r})")
        if k not in CORE_SUMMARY_KEYS and k not in definition.summary_keys:
            raise DefinitionError(f"{kind} {definition.key!r}: summary_labels key {k!r} is neither a core "
                                  f"summary key nor one of its summary_keys")


@dataclass(frozen=True)
class TenantJob:
    """What an executor gets for one tenant of a run. Ids, not ORM objects.

    An executor must not commit: the ledger commits its writes together with the
    tenant's result. Effects that must follow that commit (product telemetry, a
    notification) are registered with ``after_commit(fn)``: ``fn()`` runs once the tenant
    succeeded and its writes committed, in registration order, and never if the tenant
    failed (its writes were rolled back). An effect that raises is logged and does not
    change the tenant's result."""

    run_id: int
    tenant_id: int
    workspace_id: int
    operation_type: str
    context: Mapping[str, Any]
    effects: list = field(default_factory=list, repr=False, compare=False)

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` after the ledger commits this tenant's success."""
        if not callable(fn):
            raise TypeError("after_commit takes a callable")
        self.effects.append(fn)


@dataclass(frozen=True)
class OperationType:
    """A kind of operation run.

    execute_tenant(job: TenantJob) -> dict of summary counts for that tenant. It must be
    idempotent and may raise TenantJobError to fail just that tenant.

    execute_tenants (optional) does the same for a group of tenants at once, set-based:
    (list of TenantJob) -> {tenant_id: counts} for every job given. The ledger commits the
    group's writes together with each tenant's own result row. If it raises, the group's
    writes are rolled back and its tenants run one by one with execute_tenant, so a
    failing tenant fails alone.
    """

    key: str
    label: str
    execute_tenant: Callable[[TenantJob], Mapping[str, int]]
    summary_keys: tuple[str, ...] = ()
    platform_capabilities: tuple[str, ...] = ()
    # Empty: cannot be started from the tenant plane.
    tenant_capabilities: tuple[str, ...] = ()
    # Control key that gates starts (None: ungated).
    control_key: str | None = None
    scopes: tuple[str, ...] = SCOPES
    # Circuit breaker; None: the app's TENANTPILOT_CIRCUIT_MIN_TENANTS / _FAILURE_RATIO.
    circuit_min_tenants: int | None = None
    circuit_failure_ratio: float | None = None
    # A summary key counting failed items inside tenants that finished (e.g. restore
    # items): when > 0 the run ends partially_succeeded rather than succeeded.
    partial_failure_key: str | None = None
    # Tenant statuses a single-tenant run may target. Fleet and workspace runs always
    # take active tenants only (SPEC 3); onboarding's verification runs on its draft tenant.
    tenant_statuses: tuple[str, ...] = ("active",)
    # Labels of its summary keys, in the order pages show them: key -> label, e.g.
    # {"applied": "Items applied", "items_failed": "Items failed"}. Keys without a label
    # read as a sentence ("items_failed" -> "Items failed") after the declared ones.
    summary_labels: Mapping[str, str] = field(default_factory=dict)
    # Group executor (see the class docstring); None: tenants run one by one.
    execute_tenants: Callable[[list[TenantJob]], Mapping[int, Mapping[str, int]]] | None = None

    def __post_init__(self):
        _require_key("operation type", self.key)
        _check_summary_labels("operation type", self)
        bad_status = set(self.tenant_statuses) - set(TENANT_STATUSES)
        if bad_status or "archived" in self.tenant_statuses or not self.tenant_statuses:
            raise DefinitionError(f"operation type {self.key!r}: tenant_statuses must be among active, onboarding")
        if self.partial_failure_key and self.partial_failure_key not in self.summary_keys:
            raise DefinitionError(f"operation type {self.key!r}: partial_failure_key must be one of its summary_keys")
        bad = set(self.scopes) - set(SCOPES)
        if bad or not self.scopes:
            raise DefinitionError(f"operation type {self.key!r}: unknown scopes {sorted(bad)}")
        if not callable(self.execute_tenant):
            raise DefinitionError(f"operation type {self.key!r}: execute_tenant must be callable")
        if self.execute_tenants is not None and not callable(self.execute_tenants):
            raise DefinitionError(f"operation type {self.key!r}: execute_tenants must be callable or None")

    @property
    def allowed_summary_keys(self) -> frozenset[str]:
        return frozenset(CORE_SUMMARY_KEYS) | frozenset(self.summary_keys)


@dataclass(frozen=True)
class Runbook:
    """A safe, repeatable maintenance operation across tenants (SPEC 3).

    preflight(scope: dict) -> dict with at least affected_count (items to change; 0: nothing
    to start), total_count (items scanned), estimated_tenants (tenants with work); read-only. execute_tenant as for OperationType.
    """

    key: str
    label: str
    description: str
    capability: str
    execute_tenant: Callable[[TenantJob], Mapping[str, int]]
    preflight: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    confirmation_word: str
    scopes: tuple[str, ...] = SCOPES
    control_key: str | None = None
    reason_required_scopes: tuple[str, ...] = ("all_tenants", "workspace")
    summary_keys: tuple[str, ...] = ()
    tenant_capabilities: tuple[str, ...] = ()
    run_on_deploy: bool = False
    templates: Mapping[str, str] = field(default_factory=dict)  # fragment name -> template
    circuit_min_tenants: int | None = None  # None: the app-wide default (config)
    circuit_failure_ratio: float | None = None
    summary_labels: Mapping[str, str] = field(default_factory=dict)  # as for OperationType
    # Four-eyes approval (tenantpilot.approvals): a runbook that changes data needs a
    # second operator's approval for all-tenants starts unless it names its own scopes.
    changes_data: bool = True
    approval_scopes: tuple[str, ...] | None = None  # None: ("all_tenants",) if changes_data else ()
    # Optional group executor, as for OperationType (a fleet of small tenants settles in
    # a few round trips per group instead of a few per tenant).
    execute_tenants: Callable[[list[TenantJob]], Mapping[int, Mapping[str, int]]] | None = None

    def __post_init__(self):
        _require_key("runbook", self.key)
        _check_summary_labels("runbook", self)
        if not self.capability.startswith("platform.runbooks."):
            raise DefinitionError(f"runbook {self.key!r}: capability must start with 'platform.runbooks.'")
        bad = set(self.scopes) - set(SCOPES)
        if bad or not self.scopes:
            raise DefinitionError(f"runbook {self.key!r}: unknown scopes {sorted(bad)}")
        if self.approval_scopes is None:
            object.__setattr__(self, "approval_scopes", ("all_tenants",) if self.changes_data else ())
        bad = set(self.approval_scopes) - set(SCOPES)
        if bad:
            raise DefinitionError(f"runbook {self.key!r}: unknown approval_scopes {sorted(bad)}")
        if not self.confirmation_word or not self.confirmation_word.isupper():
            raise DefinitionError(f"runbook {self.key!r}: confirmation_word must be an upper-case word")
        for name in ("execute_tenant", "preflight"):
            if not callable(getattr(self, name)):
                raise DefinitionError(f"runbook {self.key!r}: {name} must be callable")
        if self.execute_tenants is not None and not callable(self.execute_tenants):
            raise DefinitionError(f"runbook {self.key!r}: execute_tenants must be callable or None")

    def operation_type(self) -> OperationType:
        """Every runbook is also an operation type of the same key."""
        return OperationType(
            key=self.key,
            label=self.label,
            execute_tenant=self.execute_tenant,
            summary_keys=self.summary_keys,
            platform_capabilities=("platform.runbooks.run", self.capability),
            tenant_capabilities=self.tenant_capabilities,
            control_key=self.control_key,
            scopes=self.scopes,
            circuit_min_tenants=self.circuit_min_tenants,
            circuit_failure_ratio=self.circuit_failure_ratio,
            summary_labels=self.summary_labels,
            execute_tenants=self.execute_tenants,
        )


@dataclass(frozen=True)
class ControlKey:
    """A risky action operators may pause without a deploy (SPEC 4)."""

    key: str
    label: str
    scopes: tuple[str, ...] = CONTROL_SCOPES
    operation_types: tuple[str, ...] = ()
    # Where the paused action lives, as ids such as "admin.restore_runs" (plane.page), and
    # how operators read them: surface id -> label. A surface without a label reads as its
    # page and plane ("Restore runs (tenant plane)").
    surfaces: tuple[str, ...] = ()
    surface_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        _require_key("control", self.key)
        bad = set(self.scopes) - set(CONTROL_SCOPES)
        if bad or not self.scopes:
            raise DefinitionError(f"control {self.key!r}: unknown scopes {sorted(bad)}")
        labels = _labels("control", self.key, "surface_labels", self.surface_labels)
        object.__setattr__(self, "surface_labels", labels)
        unknown = sorted(set(labels) - set(self.surfaces))
        if unknown:
            raise DefinitionError(f"control {self.key!r}: surface_labels names surfaces it does not list: {unknown}")


@dataclass(frozen=True)
class EventFamily:
    """A product-usage telemetry event (SPEC 6)."""

    name: str
    feature_area: str
    label: str
    metadata_keys: tuple[str, ...] = ()

    def __post_init__(self):
        _require_key("event", self.name)


# --- The provider boundary (SPEC 5) -------------------------------------------------
# Platform verbs ("read policies", "apply a policy", "read permissions", "read directory
# roles") in platform vocabulary; a provider plugin turns them into vendor calls.

PROVIDER_REASONS = (
    "not_connected",    # the tenant has no provider connection
    "misconfigured",    # a setting or the secret reference is missing or invalid
    "auth_failed",      # the vendor refused our credentials
    "forbidden",        # authenticated, but not allowed to do this
    "not_found",        # the policy (or tenant) does not exist at the vendor
    "invalid_payload",  # the vendor rejected what we sent
    "throttled",        # still throttled after the retries
    "unavailable",      # the vendor failed (5xx) after the retries, or refused the connection
    "timeout",          # no answer within the time limit
    "unsupported",      # this provider cannot do this (e.g. an unknown policy type)
)


class ProviderError(Exception):
    """A provider call failed. ``reason_code`` is one of PROVIDER_REASONS; ``message`` is
    short and safe to show: never a secret, token, e-mail or vendor payload."""

    def __init__(self, reason_code: str, message: str = ""):
        if reason_code not in PROVIDER_REASONS:
            reason_code = "unavailable"
        super().__init__(message or reason_code)
        self.reason_code = reason_code
        self.message = message or reason_code.replace("_", " ").capitalize() + "."


@dataclass(frozen=True)
class PolicyRecord:
    """One policy as the provider sees it now. ``payload`` is its settable state only
    (no ids, timestamps or versions), so two payloads compare equal when a restore of one
    over the other would change nothing."""

    policy_type: str
    policy_id: str
    name: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class RoleAssignment:
    """A directory role held by a principal (user, group or service principal)."""

    role: str
    principal_id: str
    principal_type: str = "user"


@dataclass(frozen=True)
class ProviderField:
    """One setting of a provider connection, rendered on the tenant's connection page.

    kind: ``text``; ``guid``; ``secret_ref`` — a reference such as ``env:NAME`` or
    ``file:/run/secrets/name``, resolved when a client is built and never stored,
    logged or shown back."""

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    help: str = ""
    # What the form starts with for a tenant without saved settings: a string, or a
    # callable given the Tenant (e.g. ``lambda tenant: tenant.external_id``). Never for a
    # secret reference.
    default: str | Callable[[Any], str] | None = None

    def initial(self, tenant) -> str:
        value = self.default(tenant) if callable(self.default) else self.default
        return "" if value is None else str(value)

    def __post_init__(self):
        if self.kind == "secret_ref" and self.default is not None:
            raise DefinitionError(f"provider field {self.name!r}: a secret reference has no default")
        if self.kind not in ("text", "guid", "secret_ref"):
            raise DefinitionError(f"provider field {self.name!r}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class ProviderConnectionInfo:
    """What a provider factory gets: the tenant, its non-secret settings and the secret
    resolved from its reference (excluded from repr so it never reaches a log line)."""

    tenant_id: int
    tenant_external_id: str
    provider: str
    settings: Mapping[str, str]
    secret: str | None = field(default=None, repr=False)


@runtime_checkable
class ProviderClient(Protocol):
    """The one interface every provider client implements. Methods raise ProviderError."""

    def list_policies(self, policy_type: str) -> list[PolicyRecord]:
        """Every policy of that type, all pages."""

    def get_policy(self, policy_type: str, policy_id: str) -> PolicyRecord | None:
        """One policy, or None when it does not exist."""

    def apply_policy(self, policy_type: str, policy_id: str, payload: Mapping[str, Any]) -> str:
        """Make the policy's settable state equal ``payload`` (creating it if missing).
        Returns ``"applied"`` when something changed, ``"unchanged"`` when nothing had to."""

    def granted_permissions(self) -> list[str]:
        """The permissions our app holds in the tenant (e.g. ``Policy.Read.All``)."""

    def directory_role_assignments(self) -> list[RoleAssignment]:
        """Directory role assignments of the tenant."""


@dataclass(frozen=True)
class Provider:
    """A provider implementation by name.

    factory(info: ProviderConnectionInfo) -> ProviderClient, called in an app context;
    policy_types maps the policy type keys it supports to labels; fields are the
    connection settings an admin fills in for a tenant."""

    name: str
    label: str
    factory: Callable[[ProviderConnectionInfo], ProviderClient]
    policy_types: Mapping[str, str] = field(default_factory=dict)
    fields: tuple[ProviderField, ...] = ()

    def __post_init__(self):
        if not re.match(r"^[a-z][a-z0-9_]*$", self.name):
            raise DefinitionError(f"provider name {self.name!r} must be lower_snake_case")
        if not callable(self.factory):
            raise DefinitionError(f"provider {self.name!r}: factory must be callable")
        if sum(f.kind == "secret_ref" for f in self.fields) > 1:
            raise DefinitionError(f"provider {self.name!r}: at most one secret_ref field")


@dataclass(frozen=True)
class DashboardWidget:
    """A /system dashboard widget: template rendered with context(window) -> dict."""

    key: str
    title: str
    template: str
    context: Callable[[str], Mapping[str, Any]]
    order: int = 100

    def __post_init__(self):
        _require_key("widget", self.key)


@dataclass(frozen=True)
class TenantCapability:
    """A tenant-plane capability a plugin enforces, and the roles that hold it (SPEC 1).

    ``owner`` holds every tenant capability whatever ``roles`` says; list the others
    (``manager``, ``operator``, ``readonly``) that should."""

    key: str
    label: str
    roles: tuple[str, ...] = ("owner", "manager")

    def __post_init__(self):
        _require_key("tenant capability", self.key)
        if self.key.startswith(("platform.", "tenant.", "workspace.")):
            raise DefinitionError(f"tenant capability {self.key!r}: the platform., tenant. and workspace. "
                                  "namespaces belong to the core")
        bad = set(self.roles) - {"owner", "manager", "operator", "readonly"}
        if bad:
            raise DefinitionError(f"tenant capability {self.key!r}: unknown roles {sorted(bad)}")


@dataclass(frozen=True)
class TenantPage:
    """A tab on every tenant's pages in /admin/t/<tenant>/: the view ``endpoint`` takes
    ``tenant_id``; members without ``capability`` do not see the tab."""

    key: str
    label: str
    endpoint: str
    capability: str = "tenant.view"
    order: int = 100

    def __post_init__(self):
        _require_key("tenant page", self.key)


@dataclass(frozen=True)
class TenantAction:
    """A button on tenant-plane surfaces: a POST (with CSRF) to ``endpoint``, which takes
    ``tenant_id`` and, on the operation-run viewer, ``run_id``. Members without
    ``capability`` do not see it (the view must still check it)."""

    key: str
    label: str
    endpoint: str
    capability: str
    surfaces: tuple[str, ...] = TENANT_SURFACES
    order: int = 100

    def __post_init__(self):
        _require_key("tenant action", self.key)
        bad = set(self.surfaces) - set(TENANT_SURFACES)
        if bad or not self.surfaces:
            raise DefinitionError(f"tenant action {self.key!r}: unknown surfaces {sorted(bad)}")


SETTING_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{2,80}$")


@dataclass(frozen=True)
class Setting:
    """A plugin setting: an environment variable (or app config key) with a default and
    one line of documentation, listed by ``flask plugins``. Read it with
    ``tenantpilot.sdk.setting(name)``: the app config first (tests, instance config), then
    the environment (``parse``d from its string), then ``default``."""

    name: str
    default: Any
    doc: str
    parse: Callable[[str], Any] = str

    def __post_init__(self):
        if not SETTING_NAME_RE.match(self.name):
            raise DefinitionError(f"setting {self.name!r}: the name must be an upper-case environment variable name")
        if not self.doc.strip():
            raise DefinitionError(f"setting {self.name!r}: document it (doc)")
        if not callable(self.parse):
            raise DefinitionError(f"setting {self.name!r}: parse must be callable")


@dataclass(frozen=True)
class WorkspaceAction:
    """A link in the tenant plane's workspace header (e.g. "Onboard a tenant"): a GET to
    ``endpoint`` (no arguments). Members of the current workspace without ``capability``
    do not see it (the view must still check it)."""

    key: str
    label: str
    endpoint: str
    capability: str
    order: int = 100

    def __post_init__(self):
        _require_key("workspace action", self.key)


@dataclass(frozen=True)
class ScheduledJob:
    """A periodic job run by the one scheduler: func() called in an app context."""

    name: str
    interval_seconds: int
    func: Callable[[], Any]

    def __post_init__(self):
        _require_key("scheduled job", self.name)
        if self.interval_seconds < 1:
            raise DefinitionError(f"scheduled job {self.name!r}: interval must be >= 1 second")
