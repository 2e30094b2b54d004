"""/system/ops/controls: operational control cards, Pause → Review impact → Confirm,
Resume → preview → Confirm, and each control's history (SPEC 4).

Every step is an ordinary form POST. With htmx (HX-Request) a step returns only the
card's panel fragment; without JavaScript the same endpoint returns the whole page with
that card's panel showing the step. All writes go through control_service.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from .. import control_service as svc
from .. import idempotency
from ..extensions import db
from ..models import PlatformUser, Workspace
from ..planes import platform_required
from . import inputs, times
from .locale import valid_zone, viewer_timezone
from .system import current_actor

bp = Blueprint("controls", __name__)
CAPABILITY = "platform.ops.controls.manage"
PICKER_LIMIT = 50


def slug(key: str) -> str:
    return key.replace(".", "-")


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def _control(key: str):
    control = svc.control_keys().get(key)
    if control is None:
        abort(404)
    return control


def owner_names(pauses) -> dict[int, str]:
    """Platform user id → name of whoever last set each pause."""
    ids = {p.updated_by or p.created_by for p in pauses} - {None}
    if not ids:
        return {}
    return dict(db.session.execute(select(PlatformUser.id, PlatformUser.name).where(PlatformUser.id.in_(ids))).all())


def workspace_names(ids) -> dict[int, str]:
    ids = set(ids) - {None}
    if not ids:
        return {}
    return dict(db.session.execute(select(Workspace.id, Workspace.name).where(Workspace.id.in_(ids))).all())


def _card(control) -> dict:
    pauses = svc.active_pauses(control.key)
    names = owner_names(pauses)
    hist = svc.history(control.key)
    ws_names = workspace_names({p.workspace_id for p in pauses} | {
        e.meta.get("workspace_id") for e in hist if isinstance(e.meta, dict)})
    rows = [{
        "activation": p,
        "scope_label": "Global" if p.scope_type == "global" else ws_names.get(p.workspace_id, f"Workspace {p.workspace_id}"),
        "owner": names.get(p.updated_by or p.created_by, "System"),
    } for p in pauses]
    return {"control": control, "slug": slug(control.key), "pauses": rows, "state": svc.state_label(pauses),
            "history": hist, "ws_names": ws_names}


def _page(active_key: str | None = None, panel: str | None = None, status: int = 200, **panel_ctx):
    """The whole page, or (htmx) only the panel fragment of the active card."""
    if is_htmx() and panel:
        control = _control(active_key)
        return render_template(panel, control=control, s=slug(control.key), ctx=panel_ctx), status
    cards = [_card(c) for c in svc.control_keys().values()]
    return render_template("system/controls.html", cards=cards, active_key=active_key, panel=panel,
                           panel_ctx=panel_ctx), status


def _workspaces(query: str = "", selected: int | None = None):
    q = select(Workspace)
    query = (query or "").strip()
    if query:
        q = q.where(func.lower(Workspace.name).like(f"%{query.lower()}%"))
    rows = list(db.session.scalars(q.order_by(Workspace.name).limit(PICKER_LIMIT)))
    if selected and all(w.id != selected for w in rows):
        ws = db.session.get(Workspace, selected)
        if ws is not None:
            rows.insert(0, ws)
    return rows


def _form_values() -> dict:
    t = inputs.form_text
    # The expiry is read in the zone its label named when the form was shown (the form
    # carries it), so a zone cookie set in between cannot shift it; else the viewer's.
    return {"scope_type": t("scope_type"), "workspace_id": t("workspace_id"), "reason": t("reason"),
            "expires_at": t("expires_at").strip(), "workspace_query": t("workspace_query"),
            "tz": valid_zone(t("tz")) or viewer_timezone()}


def _parse_expiry(raw: str, zone: str, errors: dict):
    """The picker's local date and time in ``zone`` → naive UTC; a field error otherwise."""
    if not raw:
        return None
    try:
        return times.parse_local(raw, zone)
    except times.NotALocalTime as exc:
        errors["expires_at"] = str(exc)
        return None


def _ws_id(raw):
    if raw in (None, ""):
        return None
    parsed = inputs.parse_int(raw.strip())
    return parsed if parsed is not None else raw  # the service reports it as unknown


def _validated_pause(key: str, values: dict):
    errors: dict = {}
    expires_at = _parse_expiry(values["expires_at"], values["tz"], errors)
    try:
        req = svc.validate_pause(key, values["scope_type"], _ws_id(values["workspace_id"]), values["reason"], expires_at)
    except svc.ControlValidationError as exc:
        errors = {**exc.errors, **errors}
        req = None
    return (None, errors) if errors else (req, {})


def _pause_form(key: str, values: dict, errors: dict, status: int):
    selected = _ws_id(values.get("workspace_id"))
    return _page(key, "system/_control_pause_form.html", status, values=values, errors=errors,
                 workspaces=_workspaces(values.get("workspace_query", ""), selected if isinstance(selected, int) else None))


def _done(message: str, category: str = "info"):
    flash(message, category)
    target = url_for("controls.index")
    if is_htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


# --- views -------------------------------------------------------------------------------


@bp.get("")
@platform_required(CAPABILITY)
def index():
    return _page()


@bp.get("/workspace-options")
@platform_required(CAPABILITY)
def workspace_options():
    """The workspace picker's search (htmx): the <select> with matching workspaces."""
    return render_template("system/_control_workspace_select.html", s=request.args.get("s", ""),
                           workspaces=_workspaces(request.args.get("workspace_query", ""),
                                                  inputs.arg_int("workspace_id")),
                           selected=inputs.arg_int("workspace_id"), errors={})


@bp.get("/<key>/panel")
@platform_required(CAPABILITY)
def panel(key: str):
    """The card's idle panel (Cancel of a step, htmx)."""
    _control(key)
    if not is_htmx():
        return redirect(url_for("controls.index"))
    return _page(key, "system/_control_idle.html")


@bp.route("/<key>/pause", methods=["GET", "POST"])
@platform_required(CAPABILITY)
def pause(key: str):
    """GET: the pause form. POST: Review impact (validated; nothing written)."""
    control = _control(key)
    if request.method == "GET":
        scope = "global" if "global" in control.scopes else "workspace"
        return _pause_form(key, {"scope_type": scope, "workspace_id": "", "reason": "", "expires_at": "",
                                 "workspace_query": "", "tz": viewer_timezone()}, {}, 200)
    values = _form_values()
    if request.form.get("search"):  # no-JS workspace search: redisplay the form
        return _pause_form(key, values, {}, 200)
    req, errors = _validated_pause(key, values)
    if errors:
        return _pause_form(key, values, errors, 422)
    existing = svc.active_pauses(key)
    already = any(p.scope_type == req.scope_type and p.workspace_id == req.workspace_id for p in existing)
    return _page(key, "system/_control_review.html", mode="pause", values=values, req=req, already=already,
                 impact=svc.impact(key, req.scope_type, req.workspace_id))


@bp.post("/<key>/pause/confirm")
@platform_required(CAPABILITY)
def pause_confirm(key: str):
    control = _control(key)
    values = _form_values()
    req, errors = _validated_pause(key, values)  # re-validated: the review may be stale
    if errors:
        return _pause_form(key, values, errors, 422)
    try:
        idempotency.claim(f"control.pause:{key}")
    except idempotency.AlreadySubmitted:
        return _done(f"This pause of {control.label} was already confirmed; nothing changed.", "info")
    outcome = svc.pause(key, req.scope_type, req.workspace_id, req.reason, req.expires_at, current_actor())
    where = "globally" if req.scope_type == "global" else f"for workspace {req.workspace.name}"
    return _done(f"{control.label} {'paused' if outcome == 'paused' else 'pause updated'} {where}.")


def _resume_scope(key: str):
    values = _form_values()
    try:
        control, workspace = svc.validate_scope(key, values["scope_type"], _ws_id(values["workspace_id"]))
    except svc.ControlValidationError as exc:
        return None, None, values, exc.errors
    return control, workspace, values, {}


@bp.post("/<key>/resume")
@platform_required(CAPABILITY)
def resume(key: str):
    """Resume preview: what the resume re-enables (nothing written)."""
    control = _control(key)
    _, workspace, values, errors = _resume_scope(key)
    if errors:
        return _page(key, "system/_control_idle.html", 422, errors=errors)
    ws_id = workspace.id if workspace else None
    active = any(p.scope_type == values["scope_type"] and p.workspace_id == ws_id for p in svc.active_pauses(key))
    if not active:
        where = "globally" if values["scope_type"] == "global" else f"for workspace {workspace.name}"
        return _page(key, "system/_control_idle.html", 200,
                     notice=f"{control.label} is already enabled {where}; nothing to resume.")
    return _page(key, "system/_control_review.html", mode="resume", values=values, workspace=workspace,
                 impact=svc.impact(key, values["scope_type"], ws_id))


@bp.post("/<key>/resume/confirm")
@platform_required(CAPABILITY)
def resume_confirm(key: str):
    control = _control(key)
    _, workspace, values, errors = _resume_scope(key)
    if errors:
        return _page(key, "system/_control_idle.html", 422, errors=errors)
    try:
        idempotency.claim(f"control.resume:{key}")
    except idempotency.AlreadySubmitted:
        return _done(f"This resume of {control.label} was already confirmed; nothing changed.", "info")
    outcome = svc.resume(key, values["scope_type"], workspace.id if workspace else None, current_actor())
    where = "globally" if values["scope_type"] == "global" else f"for workspace {workspace.name}"
    if outcome == "already_enabled":
        return _done(f"{control.label} is already enabled {where}; nothing changed.", "warning")
    return _done(f"{control.label} resumed {where}.")
