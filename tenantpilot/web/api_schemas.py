"""Marshmallow schemas the core's API endpoints share (runs, scopes, control state).

Text fields refuse control characters (NUL included) like every form does, and every
id is bounded to the id column range, so a bad value is a 422 naming the field, never a
database error.
"""
from __future__ import annotations

import base64
import re

import marshmallow as ma
from marshmallow import validate

from .inputs import ID_MAX, has_control_chars, parse_int


def _no_control_chars(value: str) -> None:
    if has_control_chars(value):
        raise ma.ValidationError("Remove the control characters (such as NUL) from this value.")


def Text(*, max_length: int, required: bool = False, **kw) -> ma.fields.String:
    return ma.fields.String(required=required, validate=[validate.Length(max=max_length), _no_control_chars], **kw)


def Id(**kw) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=ID_MAX), **kw)


class ScopeSchema(ma.Schema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(("all_tenants", "workspace", "single_tenant")))
    workspace_id = Id(allow_none=True, load_default=None)
    tenant_id = Id(allow_none=True, load_default=None)


class ControlStateSchema(ma.Schema):
    key = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    state = ma.fields.String(required=True, metadata={"description": "enabled | paused | paused in N workspaces"})
    paused = ma.fields.Boolean(required=True, metadata={"description": "Globally paused."})
    reason = ma.fields.String(allow_none=True)
    paused_workspace_ids = ma.fields.List(ma.fields.Integer(), required=True)


class RunSummarySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    operation_type = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "queued | running | completed"})
    outcome = ma.fields.String(required=True,
                               metadata={"description": "pending | succeeded | partially_succeeded | failed | cancelled"})
    scope = ma.fields.String(required=True)
    workspace_id = ma.fields.Integer(allow_none=True)
    tenant_id = ma.fields.Integer(allow_none=True)
    tenants_total = ma.fields.Integer(required=True)
    tenants_done = ma.fields.Integer(required=True)
    tenants_failed = ma.fields.Integer(required=True)
    tenants_skipped = ma.fields.Integer(required=True)
    created_at = ma.fields.String(required=True)
    started_at = ma.fields.String(allow_none=True)
    completed_at = ma.fields.String(allow_none=True)
    url = ma.fields.String(required=True, metadata={"description": "This run in the API."})


def run_summary(run, plane: str = "system") -> dict:
    """A run as every endpoint shows it; ``url`` is the run in ``plane``'s API (the tenant
    plane's is under the run's tenant, where a tenant token can read it)."""
    from ..timeutil import iso_utc

    url = (f"/admin/api/v1/tenants/{run.tenant_id}/runs/{run.id}" if plane == "admin" and run.tenant_id
           else f"/system/api/v1/runs/{run.id}")

    return {
        "id": run.id, "operation_type": run.type,
        "label": (run.context or {}).get("operation_label") or run.type,
        "status": run.status, "outcome": run.outcome,
        "scope": ((run.context or {}).get("scope") or {}).get("kind") or "",
        "workspace_id": run.workspace_id, "tenant_id": run.tenant_id,
        "tenants_total": run.tenants_total, "tenants_done": run.tenants_done,
        "tenants_failed": run.tenants_failed, "tenants_skipped": run.tenants_skipped,
        "created_at": iso_utc(run.created_at), "started_at": iso_utc(run.started_at) if run.started_at else None,
        "completed_at": iso_utc(run.completed_at) if run.completed_at else None,
        "url": url,
    }


# --- query strings: ids, page sizes and cursors -------------------------------------------


class _AsciiInt(ma.fields.Integer):
    """An integer from a query string: ASCII digits only (``int()`` also takes "١٢")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not _ASCII_DIGITS.fullmatch(value.strip()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def QueryId(**kw) -> ma.fields.Integer:
    return _AsciiInt(validate=validate.Range(min=1, max=ID_MAX), **kw)


def Limit(default: int = DEFAULT_LIMIT) -> ma.fields.Integer:
    return _AsciiInt(load_default=default, validate=validate.Range(min=1, max=MAX_LIMIT),
                     metadata={"description": f"Items per page, 1–{MAX_LIMIT}."})


def Cursor() -> ma.fields.String:
    return Text(max_length=100, load_default=None, allow_none=True,
                metadata={"description": "The `next_cursor` of the previous page (opaque)."})


_CURSOR_PREFIX = "k1:"


def encode_cursor(key: int) -> str:
    """An opaque keyset cursor: the last item's key. Clients pass it back unchanged."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{key}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """The key a cursor names, or a 400 problem for anything that is not one of ours."""
    from .apiv1 import problem

    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (ValueError, UnicodeError):
        text = ""
    key = parse_int(text[len(_CURSOR_PREFIX):], minimum=1) if text.startswith(_CURSOR_PREFIX) else None
    if key is None:
        problem(400, "bad-cursor", "Invalid cursor",
                "This cursor is not one this API gave out; start again without it.")
    return key
