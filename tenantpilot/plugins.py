"""The plugin manager (one per app) and the read-only registry built from it."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Iterable

import pluggy

from . import api, hookspecs
from .capabilities import PLATFORM_CAPABILITIES, role_map

ENTRY_POINT_GROUP = "tenantpilot"
# Core features implemented as plugins of the core itself (as Datasette does).
DEFAULT_PLUGINS = ("tenantpilot.notify", "tenantpilot.alerts", "tenantpilot.housekeeping", "tenantpilot.runbook_events",
                   "tenantpilot.telemetry_hooks")


class StartupError(RuntimeError):
    """The app cannot start: a plugin is broken or two plugins collide."""


def make_plugin_manager(plugins: Iterable | None = None) -> pluggy.PluginManager:
    """plugins=None loads the entry-point group; a list registers exactly those
    (modules, or (name, object) pairs) besides the core's own default plugins."""
    pm = pluggy.PluginManager("tenantpilot")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        if plugins is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for plugin in plugins:
                if isinstance(plugin, tuple):
                    pm.register(plugin[1], name=plugin[0])
                else:
                    pm.register(plugin, name=getattr(plugin, "__name__", None))
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or getattr(exc.plugin, "__name__", repr(exc.plugin))
        raise StartupError(f"Plugin {name!r} is invalid: {exc}") from exc
    return pm


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs) -> list[tuple[str, object]]:
    """Call a registration hook through pluggy (so ``tryfirst``/``trylast`` order and
    ``wrapper=True`` implementations keep their meaning) and return (plugin name, item)
    pairs, so errors can name the plugin that contributed each item.

    Attribution: while pluggy calls each plain implementation, a thin shim notes which
    plugin returned which objects; an item a wrapper added is attributed to "a hook wrapper"."""
    hook = getattr(pm.hook, hook_name)
    owners: dict[int, str] = {}
    shims = []
    for impl in hook.get_hookimpls():
        if impl.wrapper or impl.hookwrapper:
            continue
        shims.append((impl, impl.function))
        impl.function = _noting_owner(impl, owners)
    try:
        results = hook(**kwargs)
    except api.DefinitionError as exc:
        raise StartupError(f"Plugin {getattr(exc, 'tenantpilot_plugin', '?')!r}: {exc}") from exc
    finally:
        for impl, function in shims:
            impl.function = function
    return [(owners.get(id(item), "a hook wrapper"), item) for value in results for item in _as_list(value)]


def _noting_owner(impl, owners: dict[int, str]):
    function = impl.function

    def call(*args):
        try:
            value = function(*args)
        except api.DefinitionError as exc:
            exc.tenantpilot_plugin = impl.plugin_name
            raise
        owners.update((id(item), impl.plugin_name) for item in _as_list(value))
        return value

    return call


def _collect(pm, hook_name: str, kind: str, cls: type, key_attr: str, items=None, **kwargs):
    items = items if items is not None else call_each(pm, hook_name, **kwargs)
    found: dict[str, object] = {}
    owners: dict[str, str] = {}
    for plugin_name, item in items:
        if not isinstance(item, cls):
            raise StartupError(
                f"Plugin {plugin_name!r} returned {type(item).__name__} from {hook_name}; expected api.{cls.__name__}"
            )
        key = getattr(item, key_attr)
        if key in found:
            raise StartupError(
                f"Duplicate {kind} key {key!r}: registered by plugins {owners[key]!r} and {plugin_name!r}"
            )
        found[key] = item
        owners[key] = plugin_name
    return MappingProxyType(found), MappingProxyType(owners)


@dataclass(frozen=True)
class Registry:
    """Everything plugins contributed, validated, keyed, read-only."""

    runbooks: MappingProxyType
    operation_types: MappingProxyType
    control_keys: MappingProxyType
    event_families: MappingProxyType
    providers: MappingProxyType
    widgets: tuple
    tenant_pages: tuple
    tenant_actions: tuple
    workspace_actions: tuple
    scheduled_jobs: MappingProxyType
    owners: MappingProxyType  # (kind, key) -> plugin name
    tenant_capabilities: MappingProxyType  # key -> api.TenantCapability
    settings: MappingProxyType  # name -> api.Setting
    role_capabilities: MappingProxyType  # role -> frozenset of capabilities

    @property
    def surface_labels(self) -> dict[str, str]:
        """Surface id -> label, from every control key that declared one (first wins)."""
        labels: dict[str, str] = {}
        for control in self.control_keys.values():
            for surface, label in control.surface_labels.items():
                labels.setdefault(surface, label)
        return labels

    @property
    def platform_capabilities(self) -> tuple[str, ...]:
        extra = sorted({rb.capability for rb in self.runbooks.values()})
        return PLATFORM_CAPABILITIES + tuple(c for c in extra if c not in PLATFORM_CAPABILITIES)


def build_registry(pm: pluggy.PluginManager, app) -> Registry:
    owners: dict[tuple[str, str], str] = {}

    def collect(hook, kind, cls, key_attr="key", items=None):
        found, who = _collect(pm, hook, kind, cls, key_attr, items=items, app=app)
        owners.update({(kind, k): v for k, v in who.items()})
        return found

    runbook_items = call_each(pm, "tenantpilot_register_runbooks", app=app)
    runbooks = collect("tenantpilot_register_runbooks", "runbook", api.Runbook, items=runbook_items)
    op_items = [(name, rb.operation_type()) for name, rb in runbook_items]
    op_items += call_each(pm, "tenantpilot_register_operation_types", app=app)
    operation_types = collect("tenantpilot_register_operation_types", "operation type", api.OperationType, items=op_items)
    control_keys = collect("tenantpilot_register_control_keys", "control", api.ControlKey)
    for op in operation_types.values():
        if op.control_key and op.control_key not in control_keys:
            raise StartupError(
                f"Plugin {owners[('operation type', op.key)]!r}: operation type {op.key!r} is gated by "
                f"unknown control key {op.control_key!r}"
            )
    event_families = collect("tenantpilot_register_event_families", "event", api.EventFamily, "name")
    providers = collect("tenantpilot_register_providers", "provider", api.Provider, "name")
    widgets = collect("tenantpilot_register_dashboard_widgets", "widget", api.DashboardWidget)
    tenant_pages = collect("tenantpilot_register_tenant_pages", "tenant page", api.TenantPage)
    tenant_actions = collect("tenantpilot_register_tenant_actions", "tenant action", api.TenantAction)
    workspace_actions = collect("tenantpilot_register_workspace_actions", "workspace action", api.WorkspaceAction)
    scheduled = collect("tenantpilot_register_scheduled_jobs", "scheduled job", api.ScheduledJob, "name")
    capabilities = collect("tenantpilot_register_tenant_capabilities", "tenant capability", api.TenantCapability)
    settings = collect("tenantpilot_register_settings", "setting", api.Setting, "name")
    return Registry(
        runbooks=runbooks,
        operation_types=operation_types,
        control_keys=control_keys,
        event_families=event_families,
        providers=providers,
        widgets=tuple(sorted(widgets.values(), key=lambda w: (w.order, w.key))),
        tenant_pages=tuple(sorted(tenant_pages.values(), key=lambda p: (p.order, p.key))),
        tenant_actions=tuple(sorted(tenant_actions.values(), key=lambda a: (a.order, a.key))),
        workspace_actions=tuple(sorted(workspace_actions.values(), key=lambda a: (a.order, a.key))),
        scheduled_jobs=scheduled,
        owners=MappingProxyType(owners),
        tenant_capabilities=capabilities,
        settings=settings,
        role_capabilities=MappingProxyType(role_map(capabilities.values())),
    )


def plugin_static_dirs(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(top-level package, folder) of each plugin's ``<package>/static`` folder."""
    return [(Path(d).parent.name, d) for d in _plugin_dirs(pm, "static")]


def plugin_template_dirs(pm: pluggy.PluginManager) -> list[str]:
    """Template folders found by convention: <top-level package>/templates of each plugin."""
    return _plugin_dirs(pm, "templates")


def plugin_migration_dirs(pm: pluggy.PluginManager) -> list[str]:
    """Alembic branches found by convention: <top-level package>/migrations/versions."""
    return _plugin_dirs(pm, "migrations/versions")


def _plugin_dirs(pm: pluggy.PluginManager, relative: str) -> list[str]:
    dirs = []
    for _, plugin in pm.list_name_plugin():
        if not isinstance(plugin, ModuleType):
            continue
        top = plugin.__name__.split(".")[0]
        if top == "tenantpilot":
            continue
        spec = importlib.util.find_spec(top)
        if spec and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                candidate = Path(location) / relative
                if candidate.is_dir() and str(candidate) not in dirs:
                    dirs.append(str(candidate))
    return dirs


def describe_plugins(pm: pluggy.PluginManager, registry: Registry) -> list[dict]:
    """Name, version and contributions of every plugin (for `flask plugins`)."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        dist = dists.get(id(plugin))
        if dist is not None:
            version = dist.version
            package = dist.metadata["Name"]
        else:
            version = _module_version(plugin)
            package = None
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        contributes = sorted(f"{kind}:{key}" for (kind, key), owner in registry.owners.items()
                             if owner == name and kind != "setting")
        settings = [registry.settings[key] for (kind, key), owner in sorted(registry.owners.items())
                    if owner == name and kind == "setting"]
        rows.append({"name": name, "package": package, "version": version, "hooks": hooks, "contributes": contributes,
                     "settings": settings})
    return sorted(rows, key=lambda r: r["name"])


def _module_version(plugin) -> str:
    top = getattr(plugin, "__name__", "").split(".")[0]
    if top == "tenantpilot":
        try:
            return importlib.metadata.version("tenantpilot-ops")
        except importlib.metadata.PackageNotFoundError:
            return "dev"
    return getattr(plugin, "__version__", "unknown")
