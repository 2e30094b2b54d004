"""Hook specifications: the whole plugin API of TenantPilot.

Every hook is named ``tenantpilot_…``. Registration hooks are called once, at app
creation, and return a definition or a list of definitions from ``tenantpilot.api``; the
registry validates them and fails start-up on a duplicate key, naming both plugins.
Implementations may accept any subset of the arguments (pluggy convention).
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tenantpilot")
hookimpl = pluggy.HookimplMarker("tenantpilot")


@hookspec
def tenantpilot_register_runbooks(app):
    """Return runbook definitions (``api.Runbook`` or a list of them).

    Called once at app creation. Each runbook is also registered as an operation type of
    the same key, and its capability joins the platform capability list.
    """


@hookspec
def tenantpilot_register_control_keys(app):
    """Return operational control definitions (``api.ControlKey`` or a list).

    Called once at app creation. A control key names one risky action operators can
    pause without a deploy; ``operation_types`` lists the run types it gates.
    """


@hookspec
def tenantpilot_register_event_families(app):
    """Return product-usage telemetry event definitions (``api.EventFamily`` or a list).

    Called once at app creation. The telemetry catalog is the union of all plugins'
    families; ``metadata_keys`` is the complete allow-list for that event.
    """


@hookspec
def tenantpilot_register_operation_types(app):
    """Return operation types that are not runbooks (``api.OperationType`` or a list).

    Called once at app creation. Use it for tenant-plane operations (restore, reports…)
    that run through the same start seam and ledger.
    """


@hookspec
def tenantpilot_register_providers(app):
    """Return provider implementations (``api.Provider`` or a list), keyed by name.

    Called once at app creation. Providers turn platform verbs into vendor calls.
    """


@hookspec
def tenantpilot_register_dashboard_widgets(app):
    """Return ``api.DashboardWidget`` definitions for the ``/system`` dashboard.

    Called once at app creation; each widget's ``context(window)`` is called on every
    render of the dashboard with the selected window (``24h``, ``7d`` or ``30d``).
    """


@hookspec
def tenantpilot_register_blueprints(app, plane):
    """Return Flask blueprints to mount on a plane.

    Called twice at app creation, with ``plane`` = ``"system"`` (mounted under
    ``/system``, platform users) and ``"admin"`` (mounted under ``/admin``, tenant users).
    A blueprint's own ``url_prefix`` is appended to the plane's.
    """


@hookspec
def tenantpilot_register_api_blueprints(app, plane):
    """Return API blueprints (``sdk.ApiBlueprint``, flask-smorest's) for a plane's JSON API.

    Called twice at app creation, with ``plane`` = ``"system"`` (mounted under
    ``/system/api/v1``, platform tokens) and ``"admin"`` (under ``/admin/api/v1``, tenant
    tokens). Their operations join that plane's OpenAPI document. The token's owner is
    ``current_user`` (at most the token's capabilities), so ``tenant_required`` and
    ``platform_required`` guard API views exactly as they guard pages; errors are answered
    as ``application/problem+json`` (raise ``sdk.api_problem`` for your own).
    """


@hookspec
def tenantpilot_register_tenant_pages(app):
    """Return ``api.TenantPage`` definitions: tabs shown on every tenant's pages.

    Called once at app creation. The endpoint is a view of a blueprint you mount on the
    ``admin`` plane (see ``tenantpilot_register_blueprints``) that takes ``tenant_id``.
    """


@hookspec
def tenantpilot_register_tenant_capabilities(app):
    """Return ``api.TenantCapability`` definitions: the tenant-plane capabilities this
    plugin checks (e.g. ``restore.execute``) and the roles that hold them.

    Called once at app creation. The core owns ``tenant.view``, ``tenant.manage`` and
    ``workspace.members.manage``; ``owner`` holds every tenant capability.
    """


@hookspec
def tenantpilot_register_workspace_actions(app):
    """Return ``api.WorkspaceAction`` definitions: links in the tenant plane's workspace
    header (the tenant list), shown to members holding the action's capability.

    Called once at app creation. The endpoint is a view of a blueprint you mount on the
    ``admin`` plane; it must check the capability itself.
    """


@hookspec
def tenantpilot_register_tenant_actions(app):
    """Return ``api.TenantAction`` definitions: POST buttons on the tenant dashboard
    and/or the operation-run viewer of the tenant plane.

    Called once at app creation. The endpoint is a view of a blueprint you mount on the
    ``admin`` plane that takes ``tenant_id`` (and ``run_id`` on the run viewer); it must
    check the capability itself, as the button is only hidden from other members.
    """


@hookspec
def tenantpilot_register_scheduled_jobs(app):
    """Return ``api.ScheduledJob`` definitions run periodically by the scheduler.

    Called once at app creation. Each due slot runs once across all scheduler processes.
    """


@hookspec
def tenantpilot_register_settings(app):
    """Return ``api.Setting`` definitions: the environment variables (or app config keys)
    this plugin reads, each with its default and one line of documentation.

    Called once at app creation. ``flask plugins`` lists them with their current values;
    read one with ``tenantpilot.sdk.setting(name)`` (an unregistered name is an error).
    """


@hookspec
def tenantpilot_register_commands(cli):
    """Add ``flask`` CLI commands: ``cli`` is the app's click group; call ``cli.add_command``.

    Called once at app creation.
    """


@hookspec
def tenantpilot_seed_demo(app):
    """Add this plugin's demo data; called by ``flask demo seed`` after the core's
    workspaces, tenants and logins exist (once: a seeded database is not seeded again).

    Runs in an app context; commit what you add. Return nothing.
    """


@hookspec
def tenantpilot_run_completed(run):
    """Called after an operation run reached ``completed``, from the transactional outbox.

    ``run`` is the ``OperationRun`` row as committed. Used for notifications, alerts and a
    plugin's follow-ups. The completing transaction records one delivery per
    implementation; each is delivered right after that commit and, if the process died
    first or the implementation raised, again by the scheduler (with backoff). Delivery
    is **at least once**: make the implementation idempotent (check for what you already
    wrote). An exception here is logged, retried later, and never changes the run.
    """
