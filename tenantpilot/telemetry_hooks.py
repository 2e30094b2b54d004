"""Core plugin: product usage telemetry's own contributions, through the same hooks any
plugin uses: the "Operations started" family (the start seam is its source), the
"Product telemetry" dashboard widget, the daily retention and partition jobs and
`flask telemetry`."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import ngettext

from . import telemetry
from .api import DashboardWidget, EventFamily, ScheduledJob
from .hookspecs import hookimpl

SPARK_WIDTH, SPARK_HEIGHT = 120, 28


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.operations.started", feature_area="operations", label="Operations started",
                       metadata_keys=("operation_type",))


def sparkline(values: list[int]) -> str:
    """SVG polyline points for a series, scaled to the box (a flat line at the bottom
    for all zeros)."""
    top = max(values) or 1
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 2 - (v / top) * (SPARK_HEIGHT - 4):.1f}"
                    for i, v in enumerate(values))


def widget_context(window: str) -> dict:
    """Aggregates only: counts per family, active workspaces, trend points. No rows, no
    tenant names, no subject ids ever reach the template."""
    summary = telemetry.summary(window)
    trend = telemetry.series(window)
    families = current_app.extensions["tenantpilot"].registry.event_families
    return {
        "summary": summary,
        "families": [{"name": name, "label": fam.label, "count": summary.counts.get(name, 0),
                      "points": sparkline(trend.get(name, [0])), "peak": max(trend.get(name, [0]))}
                     for name, fam in families.items()],
        "spark": (SPARK_WIDTH, SPARK_HEIGHT),
    }


@hookimpl
def tenantpilot_seed_demo(app):
    types = sorted(current_app.extensions["tenantpilot"].registry.operation_types)
    telemetry.seed_demo_events("product.operations.started", lambda rng: {"operation_type": rng.choice(types)}, 900)


@hookimpl
def tenantpilot_register_dashboard_widgets(app):
    return DashboardWidget(key="telemetry.product", title="Product telemetry",
                           template="system/_telemetry_widget.html", context=widget_context, order=50)


@hookimpl
def tenantpilot_register_scheduled_jobs(app):
    return [
        ScheduledJob("telemetry.prune", interval_seconds=24 * 3600, func=telemetry.prune_job),
        # PostgreSQL: next months' event partitions, created well before they are needed
        # (a no-op on SQLite). It also runs at a scheduler's first tick.
        ScheduledJob("telemetry.ensure_partitions", interval_seconds=24 * 3600, func=telemetry.ensure_partitions),
    ]


@click.group("telemetry")
def telemetry_cli():
    """Product usage telemetry."""


@telemetry_cli.command("prune")
@click.option("--days", type=int, default=None,
              help="Delete events older than this many days (default: TENANTPILOT_PRODUCT_USAGE_EVENT_RETENTION_DAYS).")
@with_appcontext
def prune_command(days):
    """Delete product usage events older than the retention period."""
    days = current_app.config["TENANTPILOT_PRODUCT_USAGE_EVENT_RETENTION_DAYS"] if days is None else days
    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--days")
    deleted = telemetry.prune(days)
    click.echo(ngettext("Deleted %(num)d product usage event", "Deleted %(num)d product usage events", deleted)
               + ngettext(" older than %(num)d day.", " older than %(num)d days.", days))


@telemetry_cli.command("ensure-partitions")
@click.option("--ahead", type=click.IntRange(0, 24), default=telemetry.PARTITIONS_AHEAD, show_default=True,
              help="Months ahead of this one to have partitions for.")
@with_appcontext
def ensure_partitions_command(ahead):
    """Create the missing monthly partitions of the events table (PostgreSQL; the scheduler
    does this daily, this is for a release phase or by hand)."""
    from . import partitions
    from .extensions import db

    if not partitions.is_partitioned(db.session.connection(), telemetry.EVENTS_TABLE):
        click.echo("The events table is not partitioned (SQLite): nothing to do.")
        return
    made = telemetry.ensure_partitions(ahead_months=ahead)
    click.echo(ngettext("Created %(num)d partition", "Created %(num)d partitions", len(made))
               + (": " + ", ".join(made) if made else "") + ".")


@telemetry_cli.command("rebuild-rollups")
@with_appcontext
def rebuild_command():
    """Recount the hourly rollup and workspace activity from the raw events."""
    telemetry.rebuild_rollups()
    click.echo("Telemetry rollups rebuilt.")


@hookimpl
def tenantpilot_register_commands(cli):
    cli.add_command(telemetry_cli)
