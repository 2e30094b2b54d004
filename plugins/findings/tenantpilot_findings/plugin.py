"""The findings plugin: the Finding model (own migration branch), the tenant findings
page (a "Findings" tab on every tenant page) and its API (``api``), and the "Findings
lifecycle backfill" runbook with its control key, CLI command and demo data."""
from __future__ import annotations

from tenantpilot.api import ControlKey, Runbook, Setting, TenantCapability, TenantPage
from tenantpilot.sdk import db, hookimpl

from . import api, backfill
from . import models  # noqa: F401  (puts the findings table on the shared metadata)
from .views import bp as admin_bp

__version__ = "0.1.0"


@hookimpl
def tenantpilot_register_settings(app):
    import json

    from .backfill import DEFAULT_BATCH_SIZE

    return [
        Setting("FINDINGS_SLA_DAYS", {}, 'Days until an open finding is due, per severity, over the defaults '
                '(critical 3, high 7, medium 30, low 90); JSON, e.g. {"critical": 1}.', json.loads),
        Setting("FINDINGS_BACKFILL_BATCH_SIZE", DEFAULT_BATCH_SIZE,
                "Findings per UPDATE statement of the lifecycle backfill runbook.", int),
    ]


@hookimpl
def tenantpilot_register_tenant_capabilities(app):
    return TenantCapability(key="findings.manage", label="Manage findings", roles=("owner", "manager", "operator"))


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(
        key=backfill.KEY,
        label=backfill.LABEL,
        description="Repairs legacy findings: lifecycle dates, legacy statuses, missing SLA due dates "
                    "and duplicate open drift findings.",
        capability=backfill.CAPABILITY,
        confirmation_word="BACKFILL",
        execute_tenant=backfill.execute_tenant,
        execute_tenants=backfill.execute_tenants,  # a fleet of small tenants, a group per transaction
        preflight=backfill.preflight,
        control_key=backfill.KEY,
        tenant_capabilities=("tenant.manage",),
        run_on_deploy=True,
        templates={"preflight_detail": "tenantpilot_findings/preflight_detail.html",
                   "run_detail": "tenantpilot_findings/run_detail.html"},
        # Counts of findings inside each tenant; the ledger counts the tenants themselves.
        summary_labels={"total": "Findings scanned", "updated": "Findings repaired",
                        "skipped": "Findings skipped (already clean)", "processed": "Findings processed"},
    )


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(
        key=backfill.KEY,
        label=backfill.LABEL,
        operation_types=(backfill.KEY,),
        surfaces=("system.runbooks", "admin.findings"),
        surface_labels={"system.runbooks": "Runbooks page (system plane)",
                        "admin.findings": "Findings tab of each tenant (tenant plane)"},
    )


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    return admin_bp if plane == "admin" else None


# The API hook lives with its endpoints in api.py; pluggy registers this module only.
tenantpilot_register_api_blueprints = api.tenantpilot_register_api_blueprints


@hookimpl
def tenantpilot_register_tenant_pages(app):
    return TenantPage(key="findings.list", label="Findings", endpoint="findings_admin.findings", order=10)


@hookimpl
def tenantpilot_register_commands(cli):
    from .cli import findings_cli

    cli.add_command(findings_cli)


@hookimpl
def tenantpilot_seed_demo(app):
    from . import demo

    demo.seed()
    db.session.commit()
