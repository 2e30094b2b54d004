"""`flask findings …` commands."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from tenantpilot.sdk import Actor, Scope, Tenant, db, finish_embedded_jobs, start_operation
from .backfill import KEY
from .views import start_message

findings_cli = AppGroup("findings", help="Findings.")

EXIT_NOT_FOUND = 2
EXIT_PAUSED = 3


@findings_cli.command("backfill-lifecycle")
@click.option("--tenant", "tenant_id", type=int, required=True, help="Id of the tenant to backfill.")
@click.pass_context
def backfill_lifecycle(ctx, tenant_id):
    """Start the findings lifecycle backfill for one tenant (through the start seam).

    Exit codes: 0 started or already queued, 2 unknown or inactive tenant, 3 paused by
    an operational control, 1 anything else (e.g. the queue is unreachable)."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None or tenant.is_platform:
        click.echo(f"Error: tenant {tenant_id} not found.", err=True)
        ctx.exit(EXIT_NOT_FOUND)
    if tenant.status != "active":
        click.echo(f"Error: tenant {tenant_id} is {tenant.status}; nothing was started.", err=True)
        ctx.exit(EXIT_NOT_FOUND)
    result = start_operation(KEY, scope=Scope("single_tenant", tenant_id=tenant_id), actor=Actor.system("CLI"),
                        source="cli")
    if result.status == "blocked":
        click.echo(result.extra.get("title"))
        click.echo(result.message)
        ctx.exit(EXIT_PAUSED)
    if not result.ok:
        click.echo(f"Error: {result.message}", err=True)
        ctx.exit(EXIT_NOT_FOUND if result.status == "not_found" else 1)
    click.echo(start_message(result))
    finish_embedded_jobs(current_app._get_current_object())  # embedded mode: finish before exiting
