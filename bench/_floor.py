"""The floor for bench/http_load.py's runs list (not a benchmark itself): the least work a
signed-in page listing 50 runs must do, with none of the product's framework around it.

Per request: one query for the session row joined to its person (as tenantpilot.sessions
does), one query for the newest 51 runs (raw psycopg, one connection per thread, autocommit:
no pool, no pre-ping, no BEGIN/ROLLBACK), and a precompiled Jinja template of the runs
list's seven columns over a static page shell of the same size. No CSRF, no chrome, no
filters, no time zones, no relative times, no access control beyond the lookup. Served by
the same gunicorn command as the product, so its req/s is an upper bound for the real page
on the same machine: what Flask + Jinja + PostgreSQL can do at all.

Environment: DATABASE_URL (libpq form) of the bench database; FLOOR_SESSION_ID, the
SHA-256 hex of a live session id (bench/http_load.py passes the signed-in operator's).
"""
from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask

app = Flask(__name__)
_local = threading.local()

ROWS = """<table class="striped runs">
<thead><tr><th>#</th><th>Operation</th><th>Scope</th><th>Status</th><th>Progress</th><th>Started by</th><th>Created</th></tr></thead>
<tbody>
{% for run in runs %}
<tr data-run="{{ run.id }}">
  <td><a href="/system/ops/runs/{{ run.id }}">{{ run.id }}</a></td>
  <td>{{ run.context.get('operation_label', run.type) }}</td>
  <td>{{ (run.context.get('scope') or {}).get('kind', '') }}</td>
  <td><span class="badge badge-{{ run.status }}">{{ run.status }}</span>
    {% if run.status == 'completed' %}<span class="badge badge-{{ run.outcome }}">{{ run.outcome }}</span>{% endif %}</td>
  <td><progress value="{{ run.tenants_done }}" max="{{ run.tenants_total or 1 }}"></progress>
    <small>{{ run.tenants_done }}/{{ run.tenants_total }}</small></td>
  <td>{{ run.initiator_name or 'System' }}</td>
  <td><time datetime="{{ run.created_at.isoformat() }}">{{ run.created_at.strftime('%Y-%m-%d %H:%M') }}</time></td>
</tr>
{% endfor %}
</tbody></table>"""
# The product's page shell (head, navigation, filters form) is about 8 KB of markup.
SHELL = "<nav>" + "<a href='/system/ops/runs'>Runs</a>" * 220 + "</nav>"
TEMPLATE = app.jinja_env.from_string(
    "<!doctype html><html><head><title>Runs</title></head><body>" + SHELL + ROWS + "</body></html>")
SESSION_SQL = ("SELECT u.id, u.email, s.last_seen_at FROM platform_users u JOIN auth_sessions s ON s.user_id = u.id "
               "WHERE s.id = %s AND s.revoked_at IS NULL")
RUNS_SQL = ("SELECT id, type, status, outcome, tenants_done, tenants_total, initiator_name, created_at, context "
            "FROM operation_runs ORDER BY id DESC LIMIT 51")


class Row(dict):
    __getattr__ = dict.__getitem__


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return conn


@app.get("/")
def runs():
    conn = _conn()
    if conn.execute(SESSION_SQL, (os.environ["FLOOR_SESSION_ID"],)).fetchone() is None:
        return "signed out", 401
    cur = conn.execute(RUNS_SQL)
    names = [d.name for d in cur.description]
    rows = [Row(zip(names, r)) for r in cur.fetchall()]
    return TEMPLATE.render(runs=rows[:50])
