"""`flask` commands of the core. Plugins add theirs through tenantpilot_register_commands."""
from __future__ import annotations

import os
import threading

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import ngettext
from sqlalchemy import select

from . import audit, demo, scheduler
from .actors import Actor
from .settings import setting_value
from .extensions import db
from .models import PlatformUser
from .plugins import describe_plugins


def register_commands(app) -> None:
    app.cli.add_command(plugins_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(serve_command)
    app.cli.add_command(runbooks_cli)
    app.cli.add_command(controls_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(approvals_cli)
    app.cli.add_command(runs_cli)


@click.command("plugins")
@with_appcontext
def plugins_command():
    """List installed plugins, their versions and what each contributes."""
    state = current_app.extensions["tenantpilot"]
    for row in describe_plugins(state.pm, state.registry):
        pkg = f" ({row['package']})" if row["package"] else ""
        click.echo(f"{row['name']}{pkg} {row['version']}")
        click.echo(f"  hooks: {', '.join(row['hooks']) or '-'}")
        for item in row["contributes"]:
            click.echo(f"  + {item}")
        for s in row["settings"]:
            click.echo(f"  setting {s.name} = {setting_value(s.name)!r} (default {s.default!r}): {s.doc}")


users_cli = AppGroup("users", help="Manage platform users.")


@users_cli.command("create-platform-user")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--capability", "capabilities", multiple=True, help="Repeat for each capability.")
@click.option("--all-capabilities", is_flag=True, help="Grant every platform capability.")
def create_platform_user(email, name, password, capabilities, all_capabilities):
    """Create a /system user with an explicit capability list."""
    known = current_app.extensions["tenantpilot"].registry.platform_capabilities
    caps = list(known) if all_capabilities else list(dict.fromkeys(capabilities))
    unknown = [c for c in caps if c not in known]
    if unknown:
        raise click.BadParameter(f"unknown capability: {', '.join(unknown)}", param_hint="--capability")
    if len(password) < 10:
        raise click.BadParameter("must be at least 10 characters", param_hint="--password")
    email = email.strip().lower()
    if db.session.execute(select(PlatformUser).filter_by(email=email)).scalar_one_or_none():
        raise click.ClickException(f"A platform user with e-mail {email} already exists.")
    user = PlatformUser(email=email, name=name, capabilities=caps)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(ngettext("Created platform user %(email)s with %(num)d capability.",
                        "Created platform user %(email)s with %(num)d capabilities.", len(caps), email=email))


def _person(email: str, platform: bool):
    from .models import User

    model = PlatformUser if platform else User
    user = db.session.execute(select(model).filter_by(email=email.strip().lower())).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No {'platform' if platform else 'tenant-plane'} user with e-mail {email}.")
    return user


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--platform", is_flag=True, help="A /system user (default: a tenant-plane user).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password(email, platform, password):
    """Set a password; every session of that person ends at once."""
    if len(password) < 10:
        raise click.BadParameter("must be at least 10 characters", param_hint="--password")
    user = _person(email, platform)
    user.set_password(password)
    ended = _commit_and_end_sessions(user, platform, "password.changed", "Password set from the CLI")
    click.echo(ngettext("Password set for %(email)s; %(num)d session ended.",
                        "Password set for %(email)s; %(num)d sessions ended.", ended, email=user.email))


@users_cli.command("deactivate")
@click.option("--email", required=True)
@click.option("--platform", is_flag=True, help="A /system user (default: a tenant-plane user).")
def deactivate(email, platform):
    """Deactivate a person: they cannot sign in, and their sessions end at once."""
    user = _person(email, platform)
    user.is_active = False
    ended = _commit_and_end_sessions(user, platform, "user.deactivated", "Deactivated from the CLI")
    click.echo(ngettext("Deactivated %(email)s; %(num)d session ended.",
                        "Deactivated %(email)s; %(num)d sessions ended.", ended, email=user.email))


def _commit_and_end_sessions(user, platform: bool, action: str, summary: str) -> int:
    """Commit the change to the person, end every session of theirs, audit both."""
    from . import sessions

    db.session.commit()
    ended = sessions.end_all("system" if platform else "admin", user.id)
    audit.record(f"{'platform' if platform else 'tenant'}.{action}", actor=Actor.system("CLI"),
                 target=(f"{'platform' if platform else 'human'}_user", user.id, None),
                 summary=summary, metadata={"sessions_ended": ended})
    return ended


demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
def demo_seed():
    """Create demo workspaces, tenants and logins (never run in production)."""
    state = current_app.extensions["tenantpilot"]
    result = demo.seed(state.registry.platform_capabilities)
    if not result["created"]:
        click.echo("Demo data already present; nothing added.")
        return
    state.pm.hook.tenantpilot_seed_demo(app=current_app._get_current_object())
    click.echo("Seeded " + ngettext("%(num)d workspace", "%(num)d workspaces", result["workspaces"]) + " and "
               + ngettext("%(num)d tenant.", "%(num)d tenants.", result["tenants"]))


@demo_cli.command("logins")
def demo_logins():
    """Print the demo logins."""
    for label, email, password, where in demo.LOGINS:
        click.echo(f"  {label:<18} {email:<20} {password:<18} {where}")


@click.command("worker")
@with_appcontext
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs (the PaaS restarts it).")
def worker_command(burst, max_jobs):
    """Run an RQ worker on the app's queues; every job runs in an app context."""
    from .queue import make_worker

    state = current_app.extensions["tenantpilot"]
    if state.embedded:
        raise click.ClickException("REDIS_URL is not set: in embedded mode the web process runs the worker itself.")
    worker = make_worker(current_app._get_current_object())
    worker.work(burst=burst, max_jobs=max_jobs, logging_level="WARNING")


@click.command("scheduler")
@with_appcontext
@click.option("--once", is_flag=True, help="Run what is due now and exit.")
def scheduler_command(once):
    """Run periodic jobs (one slot runs once, however many schedulers run)."""
    app = current_app._get_current_object()
    if once:
        ran = scheduler.run_due(app)
        click.echo(f"Ran: {', '.join(ran) or 'nothing due'}")
        return
    scheduler.run_forever(app)


@click.command("serve")
@with_appcontext
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", 5000)))
def serve_command(host, port):
    """Serve the app with the embedded worker and scheduler (zero-install mode)."""
    from werkzeug.serving import run_simple

    from .queue import ensure_embedded_worker

    app = current_app._get_current_object()
    state = app.extensions["tenantpilot"]
    if state.embedded:
        ensure_embedded_worker(app)
        state.scheduler_thread = threading.Thread(target=scheduler.run_forever, args=(app,), daemon=True,
                                                  name="tenantpilot-embedded-scheduler")
        state.scheduler_thread.start()
    click.echo(f"TenantPilot Ops on http://{host}:{port}/  (system plane: http://{host}:{port}/system/)")
    run_simple(host, port, app, threaded=True, use_reloader=False)


runbooks_cli = AppGroup("runbooks", help="Runbook operations.")


@runbooks_cli.command("list")
def runbooks_list():
    """Every runbook: key, label, scopes, and which scopes need four-eyes approval."""
    from .approvals import approval_scopes

    books = current_app.extensions["tenantpilot"].registry.runbooks
    if not books:
        click.echo("No runbooks registered.")
        return
    for rb in books.values():
        needs = approval_scopes(rb)
        click.echo(f"{rb.key}  {rb.label}  scopes: {', '.join(rb.scopes)}  "
                   f"approval: {', '.join(needs) if needs else 'none'}  confirm: {rb.confirmation_word}")


@runbooks_cli.command("run-deploy")
def run_deploy():
    """Start every deploy runbook whose preflight finds work (Procfile `release`).

    No four-eyes approval here: the deploy hook is the release process (reviewed and
    merged code, run by the platform as the system actor), not one person's decision,
    and nobody would be there to approve it."""
    from .actors import Actor
    from .queue import drain_embedded
    from .runs import Scope
    from .seam import start

    runbooks = [rb for rb in current_app.extensions["tenantpilot"].registry.runbooks.values() if rb.run_on_deploy]
    if not runbooks:
        click.echo("No deploy runbooks registered; nothing to do.")
        return
    for rb in runbooks:
        preflight = dict(rb.preflight({"kind": "all_tenants"}))
        if not preflight.get("affected_count"):
            click.echo(f"{rb.label}: preflight found nothing to do.")
            continue
        result = start(rb.key, scope=Scope("all_tenants"), actor=Actor.system("Deploy hook"), source="deploy_hook",
                       context={"preflight": preflight, "reason_code": "DATA_REPAIR",
                                "reason_text": "Automatic deploy-time repair"})
        if result.status == "blocked":
            click.echo(f"{result.extra.get('title')}: {result.message} Skipped.")
        else:
            click.echo(f"{rb.label}: {result.message} (run #{result.run.id if result.run else '-'})")
    drain_embedded(current_app._get_current_object())


controls_cli = AppGroup("controls", help="Operational controls: pause and resume risky actions (SPEC 4).")


def _cli_scope(is_global: bool, workspace_id: int | None) -> tuple[str, int | None]:
    if is_global == (workspace_id is not None):
        raise click.UsageError("Give exactly one of --global or --workspace ID.")
    return ("global", None) if is_global else ("workspace", workspace_id)


def _fail(exc) -> None:
    from .control_service import ControlValidationError

    if isinstance(exc, ControlValidationError):
        flag = {"control_key": "--key", "scope_type": "--global/--workspace", "workspace_id": "--workspace",
                "reason": "--reason", "expires_at": "--expires-in"}
        raise click.ClickException("; ".join(f"{flag.get(k, k)}: {v}" for k, v in exc.errors.items()))
    raise exc


@controls_cli.command("list")
def controls_list():
    """Each control key with its label, state and active pauses."""
    from .control_service import active_pauses, control_keys, state_label
    from .models import Workspace

    keys = control_keys()
    if not keys:
        click.echo("No control keys registered.")
        return
    for key, control in keys.items():
        pauses = active_pauses(key)
        click.echo(f"{key}  {control.label}  [{state_label(pauses)}]")
        for p in pauses:
            where = "Global" if p.scope_type == "global" else (
                f"workspace {db.session.get(Workspace, p.workspace_id).name} (id {p.workspace_id})")
            expiry = f"expires {p.expires_at:%Y-%m-%d %H:%M} UTC" if p.expires_at else "no expiry"
            click.echo(f"  - {where}: {p.reason_text} ({expiry})")


@controls_cli.command("pause")
@click.option("--key", "control_key", required=True, help="Control key, e.g. findings.lifecycle.backfill")
@click.option("--global", "is_global", is_flag=True, help="Pause for every workspace.")
@click.option("--workspace", "workspace_id", type=int, default=None, help="Pause one workspace (ID).")
@click.option("--reason", required=True, help="Why (5-500 characters).")
@click.option("--expires-in", "expires_in", type=int, default=None, help="Minutes until it resumes by itself.")
def controls_pause(control_key, is_global, workspace_id, reason, expires_in):
    """Pause a control (or update the existing pause of that scope)."""
    from datetime import timedelta

    from .actors import Actor
    from .control_service import ControlValidationError, pause
    from .timeutil import utcnow

    scope_type, ws = _cli_scope(is_global, workspace_id)
    if expires_in is not None and expires_in < 1:
        raise click.BadParameter("must be at least 1 minute", param_hint="--expires-in")
    expires_at = utcnow() + timedelta(minutes=expires_in) if expires_in else None
    try:
        outcome = pause(control_key, scope_type, ws, reason, expires_at, Actor.system("CLI"))
    except ControlValidationError as exc:
        _fail(exc)
    where = "globally" if scope_type == "global" else f"in workspace {ws}"
    click.echo(f"{control_key}: {'paused' if outcome == 'paused' else 'pause updated'} {where}.")


@controls_cli.command("resume")
@click.option("--key", "control_key", required=True)
@click.option("--global", "is_global", is_flag=True)
@click.option("--workspace", "workspace_id", type=int, default=None)
def controls_resume(control_key, is_global, workspace_id):
    """Resume a paused control scope."""
    from .actors import Actor
    from .control_service import ControlValidationError, resume

    scope_type, ws = _cli_scope(is_global, workspace_id)
    try:
        outcome = resume(control_key, scope_type, ws, Actor.system("CLI"))
    except ControlValidationError as exc:
        _fail(exc)
    where = "globally" if scope_type == "global" else f"in workspace {ws}"
    if outcome == "already_enabled":
        click.echo(f"{control_key} is already enabled {where}; nothing changed.")
    else:
        click.echo(f"{control_key}: resumed {where}.")


tokens_cli = AppGroup("tokens", help="API tokens of both planes (docs/api.md).")


@tokens_cli.command("create")
@click.option("--plane", type=click.Choice(["system", "admin"]), required=True,
              help="system: a platform user's token; admin: a tenant-plane user's.")
@click.option("--email", required=True, help="The token's owner.")
@click.option("--name", required=True, help="What uses it, e.g. 'CI deploy job'.")
@click.option("--capability", "capabilities", multiple=True,
              help="Repeat for each capability; at most what the owner holds.")
@click.option("--all-capabilities", is_flag=True, help="Every capability the owner holds now.")
@click.option("--days", type=int, default=None, help="Days until it expires (1-366, default 90).")
def tokens_create(plane, email, name, capabilities, all_capabilities, days):
    """Create a token and print its secret (once; only its hash is kept)."""
    from . import tokens

    user = _person(email, plane == "system")
    caps = sorted(tokens.held_capabilities(plane, user)) if all_capabilities else list(capabilities)
    try:
        row, secret = tokens.create(plane, user, name, caps, days, Actor.system("CLI"))
    except tokens.TokenError as exc:
        flag = {"name": "--name", "capabilities": "--capability", "expires_in_days": "--days"}
        raise click.ClickException("; ".join(f"{flag.get(k, k)}: {v}" for k, v in exc.errors.items()))
    click.echo(f"Created token #{row.id} “{row.name}” for {user.email}, expires {row.expires_at:%Y-%m-%d %H:%M} UTC.")
    click.echo("Copy it now; it is not shown again:")
    click.echo(secret)


@tokens_cli.command("list")
@click.option("--plane", type=click.Choice(["system", "admin"]), default=None, help="Only this plane.")
def tokens_list(plane):
    """Every token: id, plane, owner, name, state, expiry, last use (never the secret)."""
    from . import tokens

    found = False
    for p in [plane] if plane else ["system", "admin"]:
        model = tokens.owner_model(p)
        for row in tokens.tokens_of(p):
            found = True
            owner = db.session.get(model, row.user_id)
            used = f"{row.last_used_at:%Y-%m-%d %H:%M} from {row.last_used_ip or '-'}" if row.last_used_at else "never"
            click.echo(f"#{row.id}  {p:<6} {row.prefix}…  {owner.email if owner else '?'}  “{row.name}”  "
                       f"[{tokens.state(row)}] expires {row.expires_at:%Y-%m-%d}  used {used}  "
                       f"caps: {', '.join(row.capabilities or [])}")
    if not found:
        click.echo("No API tokens.")


@tokens_cli.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
def tokens_revoke(token_id):
    """Revoke a token by id (see `flask tokens list`)."""
    from . import tokens
    from .models import ApiToken

    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise click.ClickException(f"No token #{token_id}.")
    was = tokens.state(row)
    tokens.revoke(row.plane, token_id, Actor.system("CLI"))
    click.echo(f"Token #{token_id} “{row.name}” {'was already revoked' if was == 'revoked' else 'revoked'}.")


approvals_cli = AppGroup("approvals", help="Four-eyes approval requests of runbook starts.")


def _refused(exc) -> None:
    flag = {"confirmation": "--confirm", "reason": "--reason"}
    prefix = f"{flag[exc.field]}: " if exc.field in flag else ""
    raise click.ClickException(f"{prefix}{exc.message} [{exc.slug}]")


@approvals_cli.command("list")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "expired", "cancelled", "all"]),
              default="pending", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def approvals_list(status, limit):
    """Approval requests, newest first."""
    from . import approvals, runbook_starts

    rows, more = approvals.search(None if status == "all" else status, limit=limit)
    if not rows:
        click.echo(f"No {'' if status == 'all' else status + ' '}approval requests.")
        return
    for req in rows:
        figures = req.preflight_result or {}
        decided = (f" decided by {req.decided_by.email} {req.decided_at:%Y-%m-%d %H:%M}" if req.decided_by else "")
        click.echo(f"#{req.id}  [{req.status}]  {req.runbook_key}  {runbook_starts.scope_label(req.scope)}  "
                   f"{figures.get('affected_count', 0):,} items  by {req.requester.email}  "
                   f"requested {req.created_at:%Y-%m-%d %H:%M}  expires {req.expires_at:%Y-%m-%d %H:%M} UTC"
                   f"{decided}{f'  run #{req.run_id}' if req.run_id else ''}")
    if more:
        click.echo(f"… more; use --limit (showing {limit}).")


@approvals_cli.command("approve")
@click.argument("request_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--email", required=True, help="The approving platform user (never the requester).")
@click.option("--confirm", "confirmation", required=True, help="The runbook's confirmation word.")
def approvals_approve(request_id, email, confirmation):
    """Approve a pending request: the run starts as the requester, the approver recorded."""
    from . import approvals

    approver = _person(email, True)
    try:
        req, outcome = approvals.approve(request_id, Actor.platform(approver), confirmation, "cli")
    except approvals.ApprovalRefused as exc:
        db.session.rollback()
        _refused(exc)
    click.echo(f"Request #{req.id} approved by {approver.email}: {outcome.message} (run #{outcome.run.id})")
    # Embedded mode: the run's jobs are on this process's in-process queue; run them before
    # exiting, or nobody would (as run-deploy does).
    from .queue import drain_embedded

    drain_embedded(current_app._get_current_object())


@approvals_cli.command("reject")
@click.argument("request_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--email", required=True, help="The rejecting platform user (never the requester).")
@click.option("--reason", required=True, help="Why (5-500 characters); the requester is told.")
def approvals_reject(request_id, email, reason):
    """Reject a pending request; nothing starts."""
    from . import approvals

    approver = _person(email, True)
    try:
        req = approvals.reject(request_id, Actor.platform(approver), reason, "cli")
    except approvals.ApprovalRefused as exc:
        db.session.rollback()
        _refused(exc)
    click.echo(f"Request #{req.id} rejected by {approver.email}.")


runs_cli = AppGroup("runs", help="The operation-run ledger.")


@runs_cli.command("rebuild-rollup")
def runs_rebuild_rollup():
    """Recount the dashboard's hourly rollup of completed runs from the ledger (migration
    0011 backfills it; the ledger keeps it current; use this after a bulk load)."""
    from . import run_rollup

    run_rollup.rebuild()
    click.echo("Run rollup rebuilt.")
