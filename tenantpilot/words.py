"""Words people read: summary-count keys and surface ids shown as labels, in a meaningful
order, and plurals from Babel (``ngettext``), never "item(s)".

Summary counts (``OperationRun.summary_counts`` and a tenant row's ``counts``) are shown
as (key, label, value) rows:

1. the ledger's tenant-level keys, ``tenants`` ("Tenants done") and ``failed`` ("Tenants
   failed"), so a tenant count never reads like an item count;
2. the operation type's ``summary_labels``, in their declared order;
3. the rest of its ``summary_keys``, in their declared order, read as a sentence;
4. the rest of the core vocabulary ("Items processed", "Items skipped", …);
5. any other key, alphabetically, read as a sentence ("items_failed" → "Items failed").

So a run's item-level "skipped" ("Findings skipped") and its tenant-level skipped
("2 tenants skipped": ``run.tenants_skipped``) are named apart everywhere.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from flask import current_app, has_app_context
from flask_babel import ngettext

from .api import CORE_SUMMARY_LABELS, LEDGER_SUMMARY_LABELS

# Planes by the first segment of a surface id ("admin.restore_runs").
PLANE_WORDS = {"admin": "tenant plane", "system": "system plane"}
# Surfaces of the core itself: pages a control key may name, and the tenant-plane
# surfaces of plugin actions (api.TENANT_SURFACES) that audit metadata records.
CORE_SURFACE_LABELS = {
    "system.runbooks": "Runbooks page (system plane)",
    "system.runs": "Operation runs page (system plane)",
    "system.console": "Control tower (system plane)",
    "system.controls": "Operational controls page (system plane)",
    "tenant_dashboard": "Tenant dashboard (tenant plane)",
    "operation_run_viewer": "Operation run page (tenant plane)",
}


def sentence_label(key: Any) -> str:
    """``items_failed`` → ``Items failed``: an unknown key read as a sentence."""
    words = [w for w in re.split(r"[\s_.\-]+", str(key or "")) if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else "—"


def _registry():
    if not has_app_context():
        return None
    ext = current_app.extensions.get("tenantpilot")
    return ext.registry if ext is not None else None


def operation_type(run_type: str | None):
    registry = _registry()
    return registry.operation_types.get(run_type) if registry is not None and run_type else None


def summary_labels(run_type: str | None) -> dict[str, str]:
    """Known summary keys of an operation type → label, in display order."""
    labels = dict(LEDGER_SUMMARY_LABELS)
    op = operation_type(run_type)
    if op is not None:
        for key, label in op.summary_labels.items():
            labels.setdefault(key, label)
        for key in op.summary_keys:
            labels.setdefault(key, CORE_SUMMARY_LABELS.get(key) or sentence_label(key))
    for key, label in CORE_SUMMARY_LABELS.items():
        labels.setdefault(key, label)
    return labels


def summary_label(key: str, run_type: str | None = None) -> str:
    return summary_labels(run_type).get(key) or sentence_label(key)


def order_keys(keys: Iterable[str], run_type: str | None = None) -> list[str]:
    """Keys in display order: known ones as declared, then the others alphabetically."""
    keys = set(keys)
    known = [k for k in summary_labels(run_type) if k in keys]
    return known + sorted((k for k in keys if k not in known), key=str)


def summary_rows(run_type: str | None, counts: Mapping[str, Any] | None) -> list[tuple[str, str, Any]]:
    """(key, label, value) rows of a count mapping, in display order."""
    counts = counts or {}
    labels = summary_labels(run_type)
    return [(k, labels.get(k) or sentence_label(k), counts[k]) for k in order_keys(counts, run_type)]


def run_summary(run, counts: Mapping[str, Any] | None = None) -> list[tuple[str, str, Any]]:
    """Rows of a run's summary counts (or of ``counts``, e.g. one tenant's, of that run)."""
    return summary_rows(run.type, run.summary_counts if counts is None else counts)


def surface_label(surface: str) -> str:
    """How operators read a surface id: the label a control key declared, the core's own,
    else its page and plane ("admin.restore_runs" → "Restore runs (tenant plane)")."""
    registry = _registry()
    labels = getattr(registry, "surface_labels", None) or {}
    if surface in labels:
        return labels[surface]
    if surface in CORE_SURFACE_LABELS:
        return CORE_SURFACE_LABELS[surface]
    plane, _, page = str(surface).partition(".")
    if page and plane in PLANE_WORDS:
        return f"{sentence_label(page)} ({PLANE_WORDS[plane]})"
    return sentence_label(surface)


def audit_surfaces(meta: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(surface id, label) pairs an audit event concerns: the surfaces of the control key
    it names (pause, resume, a blocked start) and the surface it came from."""
    meta = meta or {}
    found: list[str] = []
    registry = _registry()
    key = meta.get("control_key")
    control = registry.control_keys.get(key) if registry is not None and isinstance(key, str) else None
    if control is not None:
        found += list(control.surfaces)
    source = meta.get("source_surface")
    if isinstance(source, str) and source and source not in found:
        found.append(source)
    return [(s, surface_label(s)) for s in found]


def tenants(n: int) -> str:
    """"1 tenant", "1,234 tenants"."""
    return ngettext("%(count)s tenant", "%(count)s tenants", n, count=f"{n:,}")


def register(app) -> None:
    env = app.jinja_env
    env.globals["summary_rows"] = summary_rows
    env.globals["run_summary"] = run_summary
    env.globals["summary_label"] = summary_label
    env.globals["surface_label"] = surface_label
    env.globals["audit_surfaces"] = audit_surfaces
    env.filters["surface_label"] = surface_label
    env.filters["label"] = sentence_label
