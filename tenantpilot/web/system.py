"""The platform plane (/system): sign-in, console, break-glass."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import audit, dashboard
from ..actors import Actor
from ..extensions import db
from ..models import AlertDelivery, BreakGlassSession, OperationRun, PlatformUser
from ..planes import platform_required
from ..timeutil import utcnow
from . import notifications as notifications_ui
from .auth import account_view, login_view, logout_view, sign_out_everywhere_view
from . import chrome, inputs, times
from .forms import BreakGlassForm, EmptyForm

bp = Blueprint("system", __name__)


def current_break_glass() -> BreakGlassSession | None:
    if not current_user.is_authenticated:
        return None
    session_id = chrome.figures("system")["break_glass_id"]
    return db.session.get(BreakGlassSession, session_id) if session_id is not None else None


def current_actor() -> Actor:
    """The signed-in platform user as an Actor for the start seam and audit."""
    return Actor.platform(current_user, break_glass=current_break_glass() is not None)


@bp.app_context_processor
def _inject():
    from ..planes import current_plane

    if current_plane() == "system" and current_user.is_authenticated:
        return {"break_glass": current_break_glass()}
    return {}


@bp.route("/login", methods=["GET", "POST"])
def login():  # rate-limited per app in app._rate_limits
    return login_view("system", PlatformUser, "system.console")


@bp.get("/notifications")
@platform_required()
def notifications():
    return notifications_ui.list_view("system")


@bp.get("/notifications/bell")
@platform_required()
def bell():
    return notifications_ui.bell_view("system")


@bp.post("/notifications/<int:notification_id>/open")
@platform_required()
def notification_open(notification_id: int):
    return notifications_ui.open_view("system", notification_id)


@bp.post("/notifications/read-all")
@platform_required()
def notifications_read_all():
    return notifications_ui.read_all_view("system")


@bp.post("/logout")
def logout():
    return logout_view("system", current_actor() if current_user.is_authenticated else None)


@bp.route("/account", methods=["GET", "POST"])
@platform_required()
def account():
    return account_view("system", Actor.platform)


@bp.post("/account/sign-out-everywhere")
@platform_required()
def sign_out_everywhere():
    return sign_out_everywhere_view("system", current_actor())


@bp.get("/")
@platform_required("platform.console.view")
def console():
    """The control tower (SPEC 7): every section follows ``?window=``; an unknown window
    answers 400 with the default view and a message by the selector. Writes nothing."""
    window, window_error = dashboard.parse_window(request.args.get("window"))
    now = utcnow()
    since = now - window.delta
    app = current_app._get_current_object()
    widgets = [(w, w.context(window.key)) for w in app.extensions["tenantpilot"].registry.widgets]
    page = render_template(
        "system/console.html", window=window.key, window_label=window.label, windows=dashboard.WINDOWS,
        window_error=window_error, kpis=dashboard.run_kpis(since),
        top_types=dashboard.top_failing_types(since), top_tenants=dashboard.top_failing_tenants(since),
        failures=dashboard.recent_failures(since), health=dashboard.health(app, now),
        recent=db.session.execute(select(OperationRun).order_by(OperationRun.id.desc()).limit(10)).scalars().all(),
        widgets=widgets, form=break_glass_form_with_default(), empty_form=EmptyForm(),
    )
    return page, 400 if window_error else 200


def break_glass_form_with_default() -> BreakGlassForm:
    """The break-glass form, its duration defaulting to TENANTPILOT_BREAK_GLASS_MINUTES."""
    form = BreakGlassForm()
    if not form.is_submitted() or form.minutes.raw_data in (None, [], [""]):
        form.minutes.data = current_app.config["TENANTPILOT_BREAK_GLASS_MINUTES"]
    return form


@bp.post("/break-glass/start")
@platform_required()
def break_glass_start():
    form = break_glass_form_with_default()
    if current_break_glass() is not None:
        flash("A break-glass session is already active.", "info")
        return redirect(url_for("system.console"))
    if not form.validate_on_submit():
        return render_template("system/break_glass.html", form=form), 422
    now = utcnow()
    session = BreakGlassSession(platform_user_id=current_user.id, reason=form.reason.data.strip(), started_at=now,
                                expires_at=now + timedelta(minutes=form.minutes.data))
    db.session.add(session)
    db.session.flush()
    audit.record("platform.break_glass.started", actor=Actor.platform(current_user, break_glass=True),
                 target=("break_glass_session", session.id, None),
                 summary="Break-glass session started",
                 metadata={"reason": session.reason, "minutes": form.minutes.data,
                           "expires_at": session.expires_at.isoformat()})
    flash(f"Break-glass active until {times.local_text(session.expires_at)}. Operational controls still apply.", "warning")
    return redirect(url_for("system.console"))


@bp.get("/break-glass")
@platform_required()
def break_glass_form():
    return render_template("system/break_glass.html", form=break_glass_form_with_default())


@bp.post("/break-glass/stop")
@platform_required()
def break_glass_stop():
    form = EmptyForm()
    session = current_break_glass()
    if form.validate_on_submit() and session is not None:
        session.ended_at = utcnow()
        audit.record("platform.break_glass.ended", actor=current_actor(),
                     target=("break_glass_session", session.id, None), summary="Break-glass session ended")
        flash("Break-glass session ended.", "info")
    return redirect(url_for("system.console"))


ALERTS_PAGE_SIZE = 50


@bp.get("/ops/alerts")
@platform_required("platform.ops.view")
def alerts():
    """Alert deliveries (operations.run.failed), newest first, keyset-paginated by id."""
    query = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(ALERTS_PAGE_SIZE + 1)
    status = request.args.get("status")
    if status in ("pending", "sent", "failed"):
        query = query.where(AlertDelivery.status == status)
    else:
        status = None
    before = inputs.arg_int("before")
    if before:
        query = query.where(AlertDelivery.id < before)
    rows = db.session.execute(query).scalars().all()
    more = len(rows) > ALERTS_PAGE_SIZE
    rows = rows[:ALERTS_PAGE_SIZE]
    return render_template("system/alerts.html", deliveries=rows, status=status,
                           next_before=rows[-1].id if more else None)
