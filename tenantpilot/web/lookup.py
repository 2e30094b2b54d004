"""Finding things by name on the platform plane: tenant and workspace names typed into
the runs and audit filters (with typeahead suggestions), and the header's global search.

Operators know names, not ids. A typed name resolves to ids in one way everywhere:
an exact tenant ID (GUID), else exact names (any case), else names containing the text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import OperationRun, Tenant, Workspace
from ..planes import platform_required
from . import inputs

bp = Blueprint("lookup", __name__)

SUGGEST_LIMIT = 12
# A name filter applies to at most this many tenants or workspaces; a broader text asks for
# more of the name (an IN list of thousands helps nobody and costs the database).
MATCH_LIMIT = 500
SEARCH_LIMIT = 10
MAX_TEXT = 200


def like_pattern(text: str) -> str:
    """A case-folded ``%text%`` LIKE pattern with the wildcards of ``text`` escaped (use
    ``escape="\\\\"``)."""
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def tenant_query(text: str, *, active_only: bool = False):
    """Non-platform tenants whose name or tenant ID contains ``text`` (all, when empty)."""
    q = select(Tenant).where(Tenant.is_platform.is_(False))
    if active_only:
        q = q.where(Tenant.status == "active")
    text = (text or "").strip()
    if text:
        like = like_pattern(text)
        q = q.where(or_(func.lower(Tenant.name).like(like, escape="\\"),
                        func.lower(Tenant.external_id).like(like, escape="\\")))
    return q


def workspace_query(text: str):
    q = select(Workspace)
    text = (text or "").strip()
    if text:
        q = q.where(func.lower(Workspace.name).like(like_pattern(text), escape="\\"))
    return q


@dataclass
class NameMatch:
    """What a typed name resolved to: ``ids`` to filter by, or an ``error`` for the field."""

    text: str = ""
    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.text)


def _resolve(model, text: str, exact_clauses, broad_query, noun: str, plural: str) -> NameMatch:
    text = (text or "").strip()
    if not text:
        return NameMatch()
    if len(text) > MAX_TEXT or inputs.has_control_chars(text):
        return NameMatch(text[:MAX_TEXT], error=f"Type a {noun} name of at most {MAX_TEXT} characters.")
    for q in (select(model).where(or_(*exact_clauses(text))), broad_query(text)):
        rows = db.session.execute(q.with_only_columns(model.id, model.name).order_by(model.name, model.id)
                                  .limit(MATCH_LIMIT + 1)).all()
        if rows:
            break
    if not rows:
        return NameMatch(text, error=f"No {noun} matches “{text}”.")
    if len(rows) > MATCH_LIMIT:
        return NameMatch(text, error=f"More than {MATCH_LIMIT:,} {plural} match “{text}”: type more of the name.")
    return NameMatch(text, ids=[r.id for r in rows], names=[r.name for r in rows])


def resolve_tenants(text: str) -> NameMatch:
    return _resolve(
        Tenant, text,
        lambda t: [Tenant.is_platform.is_(False) & (Tenant.external_id == t.lower()),
                   Tenant.is_platform.is_(False) & (func.lower(Tenant.name) == t.lower())],
        tenant_query, "tenant", "tenants")


def resolve_workspaces(text: str) -> NameMatch:
    return _resolve(Workspace, text, lambda t: [func.lower(Workspace.name) == t.lower()], workspace_query,
                    "workspace", "workspaces")


# --- typeahead suggestions (htmx fills a <datalist>) ----------------------------------


def _can_filter() -> bool:
    return current_user.can("platform.ops.view") or current_user.can("platform.audit.view")


@bp.get("/suggest/tenants")
@platform_required()
def suggest_tenants():
    return _suggest(tenant_query(_typed("tenant_name")).order_by(Tenant.name, Tenant.id),
                    lambda t: (t.name, f"{t.workspace.name} · {t.external_id}"))


@bp.get("/suggest/workspaces")
@platform_required()
def suggest_workspaces():
    return _suggest(workspace_query(_typed("workspace_name")).order_by(Workspace.name, Workspace.id),
                    lambda w: (w.name, ""))


def _suggest(query, option):
    """The first matches of a name filter as <option>s (value, hint) for its <datalist>."""
    if not _can_filter():
        abort(403)
    rows = db.session.scalars(query.limit(SUGGEST_LIMIT)).all()
    return render_template("system/_suggestions.html", options=[option(row) for row in rows])


def _typed(name: str) -> str:
    text = (request.args.get(name) or "").strip()
    return "" if len(text) > MAX_TEXT else text


# --- the header's global search -------------------------------------------------------


@dataclass
class Hit:
    kind: str
    label: str
    url: str
    detail: str = ""


def search(text: str) -> dict[str, list[Hit]]:
    """Tenants, workspaces, runs by id, runbooks and control keys matching ``text``,
    limited to what the viewer may open."""
    text = text.strip()
    found: dict[str, list[Hit]] = {}
    registry = current_app.extensions["tenantpilot"].registry
    can_runs, can_audit = current_user.can("platform.ops.view"), current_user.can("platform.audit.view")
    if can_runs or can_audit:
        def tenant_links(t):
            return url_for("runs.runs_list", tenant_name=t.name) if can_runs else \
                url_for("audit_ui.audit_list", tenant_name=t.name)

        tenants = db.session.scalars(tenant_query(text).order_by(Tenant.name, Tenant.id).limit(SEARCH_LIMIT)).all()
        found["Tenants"] = [Hit("tenant", t.name, tenant_links(t), f"{t.workspace.name} · {t.status}") for t in tenants]
        workspaces = db.session.scalars(
            workspace_query(text).order_by(Workspace.name, Workspace.id).limit(SEARCH_LIMIT)).all()
        found["Workspaces"] = [
            Hit("workspace", w.name, url_for("runs.runs_list", workspace_name=w.name) if can_runs
                else url_for("audit_ui.audit_list", workspace_name=w.name)) for w in workspaces]
    if can_runs:
        run_id = inputs.parse_int(text.lstrip("#"), minimum=1)
        run = db.session.get(OperationRun, run_id) if run_id else None
        found["Runs"] = [Hit("run", f"Run #{run.id}", url_for("runs.run_detail", run_id=run.id),
                             run.context.get("operation_label", run.type))] if run else []
    folded = text.lower()
    if current_user.can("platform.runbooks.view"):
        found["Runbooks"] = [
            Hit("runbook", rb.label, url_for("runbooks.preflight", key=rb.key), rb.key)
            for rb in sorted(registry.runbooks.values(), key=lambda r: r.label)
            if folded in rb.label.lower() or folded in rb.key.lower()][:SEARCH_LIMIT]
    if current_user.can("platform.ops.controls.manage"):
        from .controls_ui import slug

        found["Control keys"] = [
            Hit("control", c.label, url_for("controls.index") + f"#control-{slug(c.key)}", c.key)
            for c in sorted(registry.control_keys.values(), key=lambda c: c.label)
            if folded in c.label.lower() or folded in c.key.lower()][:SEARCH_LIMIT]
    return found


@bp.get("/search")
@platform_required()
def global_search():
    text = request.args.get("q") or ""
    error = None
    if len(text) > MAX_TEXT:
        error, text = f"Search for at most {MAX_TEXT} characters.", text[:MAX_TEXT]
    elif not text.strip():
        error = "Type a tenant or workspace name, a run number, a runbook or a control key."
    results = {} if error else search(text)
    total = sum(len(v) for v in results.values())
    return render_template("system/search.html", q=text, error=error, results=results, total=total), \
        (400 if error and text else 200)
