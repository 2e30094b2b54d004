"""What goes into a review pack, and the fingerprint of that data.

Sources, each read only for the pack's tenant:
- findings: the findings plugin's table, when that plugin is installed and migrated;
- operation runs: the tenant's most recent runs, only with *include operations*;
- stored reports: the reports plugin's ``stored_reports`` table, when it exists.

Each source becomes ``<name>.json`` (an array of objects) and ``<name>.csv`` with the
same columns; ``manifest.json`` says what is inside. Personal data (people's names and
user ids) is written only with *include PII*; without it those columns are absent.

Optional sources are imported defensively: a missing plugin or table skips that source
and the manifest says so, so the pack never fails because a plugin is not installed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
import zipfile
from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import func, inspect, select
from tenantpilot.sdk import OperationRun, csv_cell, db, iso_utc


# Part of the fingerprint: a format change never reuses an older pack. 2: timestamps as
# iso_utc (to the second, with offset), as every other export.
FORMAT_VERSION = 2
RUN_TYPE = "review_pack.generate"
RECENT_RUNS_LIMIT = 500
FINDING_COLUMNS = ("id", "type", "severity", "status", "title", "fingerprint", "created_at", "first_seen_at",
                   "last_seen_at", "due_at", "resolved_at", "resolution", "consolidated_into_id")
RUN_COLUMNS = ("id", "type", "operation", "status", "outcome", "source", "initiator_type", "created_at", "started_at",
               "completed_at", "summary_counts", "failures")
RUN_PII_COLUMNS = ("initiator_user_id", "initiator_name")
# Stored report columns that name or identify people: exported only with include_pii.
PII_COLUMN_RE = re.compile(r"(name|email|user|principal|upn|_by$|_by_)", re.I)
# Field names inside stored report JSON treated the same way (a safety net: the reports
# plugin keeps people out of its summaries). Matched as whole field names, so data used as
# keys (a role called "User Administrator", "principal_types" counts) stays.
PII_KEY_RE = re.compile(r"^(name|display_?name|given_?name|surname|e?mail|upn|user_?principal_?name|username|"
                        r"user_?name|user_?id|principal_?id|principal_?name|.+_(email|mail|by|by_name|user_id|"
                        r"user_name|display_name))$", re.I)


# --- optional sources ------------------------------------------------------------------

def _has_table(name: str) -> bool:
    return inspect(db.session.connection()).has_table(name)


def findings_model():
    """The findings plugin's Finding model, or None when it is not installed/migrated."""
    try:
        from tenantpilot_findings.models import Finding
    except ImportError:
        return None
    return Finding if _has_table(Finding.__tablename__) else None


def reports_table():
    """The ``stored_reports`` table (tenantpilot_reports.models.StoredReport), or None when
    the reports plugin, its table or its tenant_id column is missing."""
    try:
        from tenantpilot_reports.models import StoredReport
    except ImportError:
        return None
    table = getattr(StoredReport, "__table__", None)
    # Without a tenant column the rows cannot be scoped to one tenant: never export them.
    if table is None or "tenant_id" not in table.c or "id" not in table.c or not _has_table(table.name):
        return None
    return table


# --- fingerprint -----------------------------------------------------------------------

def _digest_rows(query) -> list:
    return [[_plain(v) for v in row] for row in db.session.execute(query)]


def data_fingerprint(tenant_id: int, include_operations: bool, include_pii: bool) -> str:
    """A digest of the pack's source data, cheap at any table size: per group of rows
    (findings by type, severity and status; runs by status and outcome) the count, the
    sum of ids and the latest timestamps. A finding that changes status or severity, a new
    row, a run that finishes or a new report changes it; an edit that touches none of
    these (e.g. a retitled finding) does not, until the pack expires."""
    parts: dict[str, Any] = {"v": FORMAT_VERSION, "ops": bool(include_operations), "pii": bool(include_pii)}
    finding = findings_model()
    if finding is not None:
        cols = finding.__table__.c
        group = [cols.type, cols.severity, cols.status]
        parts["findings"] = _digest_rows(
            select(*group, func.count(), func.coalesce(func.sum(cols.id), 0), func.max(cols.last_seen_at),
                   func.max(cols.resolved_at), func.max(cols.due_at))
            .where(cols.tenant_id == tenant_id).group_by(*group).order_by(*group))
    if include_operations:
        group = [OperationRun.status, OperationRun.outcome]
        parts["runs"] = _digest_rows(
            select(*group, func.count(), func.coalesce(func.sum(OperationRun.id), 0),
                   func.max(OperationRun.completed_at))
            .where(OperationRun.tenant_id == tenant_id, OperationRun.type != RUN_TYPE)
            .group_by(*group).order_by(*group))
    reports = reports_table()
    if reports is not None:
        parts["reports"] = _digest_rows(
            select(func.count(), func.coalesce(func.sum(reports.c.id), 0), func.max(reports.c.id))
            .where(reports.c.tenant_id == tenant_id))
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --- values ----------------------------------------------------------------------------

def _plain(value):
    """A JSON-safe value: timestamps as ISO 8601 with offset (stored naive UTC), the one
    format of every export: 2026-12-01T17:45:00+00:00."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    # Provider-supplied text stays inert in a spreadsheet (the core's one CSV rule); the
    # JSON file keeps the raw value.
    return csv_cell(value)


def _redact(value):
    """Drop person-identifying keys (and e-mail-like strings) from nested report data."""
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items() if not PII_KEY_RE.search(str(k))}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, str) and "@" in value:
        return "[redacted]"
    return value


# --- rows of each source ---------------------------------------------------------------

def finding_rows(model, tenant_id: int) -> tuple[list[str], Iterable[dict]]:
    cols = [c for c in FINDING_COLUMNS if c in model.__table__.c]
    table = model.__table__

    def rows():
        q = select(*[table.c[c] for c in cols]).where(table.c.tenant_id == tenant_id).order_by(table.c.id)
        for row in db.session.execute(q.execution_options(yield_per=1000)):
            yield dict(zip(cols, row))

    return cols, rows()


def run_rows(tenant_id: int, include_pii: bool) -> tuple[list[str], Iterable[dict]]:
    """The tenant's most recent runs, newest first (review pack runs themselves excluded:
    they are this feature's bookkeeping and would make every pack differ)."""
    cols = list(RUN_COLUMNS) + (list(RUN_PII_COLUMNS) if include_pii else [])

    def rows():
        q = (select(OperationRun).where(OperationRun.tenant_id == tenant_id, OperationRun.type != RUN_TYPE)
             .order_by(OperationRun.id.desc()).limit(RECENT_RUNS_LIMIT))
        for run in db.session.scalars(q):
            context = run.context or {}
            initiator = context.get("initiator") or {}
            row = {
                "id": run.id, "type": run.type, "operation": context.get("operation_label", run.type),
                "status": run.status, "outcome": run.outcome, "source": context.get("source"),
                "initiator_type": initiator.get("type"), "created_at": run.created_at,
                "started_at": run.started_at, "completed_at": run.completed_at,
                "summary_counts": dict(run.summary_counts or {}),
                # Already sanitized by the ledger: reason code + short safe message.
                "failures": [{"reason_code": f.get("reason_code"), "message": f.get("message")}
                             for f in (run.failure_summary or [])],
            }
            if include_pii:
                row["initiator_user_id"] = run.initiator_user_id
                row["initiator_name"] = run.initiator_name
            yield row

    return cols, rows()


def report_rows(table, tenant_id: int, include_pii: bool) -> tuple[list[str], Iterable[dict]]:
    cols = [c.name for c in table.c if c.name != "tenant_id" and (include_pii or not PII_COLUMN_RE.search(c.name))]

    def rows():
        q = select(*[table.c[c] for c in cols]).where(table.c.tenant_id == tenant_id).order_by(table.c.id)
        for row in db.session.execute(q.execution_options(yield_per=500)):
            values = dict(zip(cols, row))
            yield values if include_pii else {k: _redact(v) for k, v in values.items()}

    return cols, rows()


# --- the ZIP ---------------------------------------------------------------------------

def _write_source(zf: zipfile.ZipFile, name: str, columns: list[str], rows: Iterable[dict]) -> int:
    """Stream ``rows`` into <name>.json inside the ZIP while spooling <name>.csv beside it
    (zipfile writes one member at a time), so JSON and CSV hold the same rows and memory
    stays bounded. Returns the number of rows."""
    n = 0
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+", newline="", encoding="utf-8") as spool:
        writer = csv.writer(spool)
        writer.writerow(columns)
        with zf.open(f"{name}.json", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
            out.write("[")
            for row in rows:
                plain = {c: _plain(row.get(c)) for c in columns}
                out.write(("," if n else "") + "\n  " + json.dumps(plain, ensure_ascii=False, sort_keys=False))
                writer.writerow([_csv_cell(plain[c]) for c in columns])
                n += 1
            out.write("\n]\n" if n else "]\n")
        spool.seek(0)
        with zf.open(f"{name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
            while chunk := spool.read(64 * 1024):
                out.write(chunk)
    return n


def build(path, *, pack_id: int, tenant, include_operations: bool, include_pii: bool, requested_by: str | None,
          generated_at: datetime, expires_at: datetime, fingerprint: str) -> dict[str, int]:
    """Write the pack's ZIP to ``path``; returns the rows written per source."""
    counts: dict[str, int] = {}
    sources: dict[str, str] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        finding = findings_model()
        if finding is not None:
            counts["findings"] = _write_source(zf, "findings", *finding_rows(finding, tenant.id))
            sources["findings"] = "included"
        else:
            sources["findings"] = "not_installed"
        if include_operations:
            counts["operation_runs"] = _write_source(zf, "operation_runs", *run_rows(tenant.id, include_pii))
            sources["operation_runs"] = "included"
        else:
            sources["operation_runs"] = "not_requested"
        reports = reports_table()
        if reports is not None:
            counts["stored_reports"] = _write_source(zf, "stored_reports", *report_rows(reports, tenant.id,
                                                                                        include_pii))
            sources["stored_reports"] = "included"
        else:
            sources["stored_reports"] = "not_installed"
        manifest = {
            "format": "tenantpilot.review_pack",
            "format_version": FORMAT_VERSION,
            "review_pack_id": pack_id,
            "tenant": {"id": tenant.id, "name": tenant.name, "external_id": tenant.external_id},
            "generated_at": _plain(generated_at),
            "expires_at": _plain(expires_at),
            "options": {"include_operations": bool(include_operations), "include_pii": bool(include_pii)},
            "personal_data": "included" if include_pii else "excluded",
            "sources": sources,
            "rows": counts,
            "files": sorted(f"{name}.{ext}" for name in counts for ext in ("json", "csv")),
            "data_fingerprint": fingerprint,
            "timestamps": "ISO 8601 with offset, UTC (2026-12-01T17:45:00+00:00)",
        }
        if include_pii:
            manifest["requested_by"] = requested_by
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return counts
