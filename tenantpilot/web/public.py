"""Routes outside both planes: the health check and the front door."""
from flask import Blueprint, current_app, jsonify, redirect, url_for
from sqlalchemy import text

from ..extensions import db

bp = Blueprint("public", __name__)


@bp.get("/")
def index():
    return redirect(url_for("admin.index"))


@bp.get("/healthz")
def healthz():
    """Database and queue reachability, for the PaaS router (503 if either is down)."""
    state = current_app.extensions["tenantpilot"]
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        db.session.rollback()
        checks["database"] = "unreachable"
    try:
        state.redis.ping()
        checks["queue"] = "embedded" if state.embedded else "ok"
    except Exception:
        checks["queue"] = "unreachable"
    healthy = all(v in ("ok", "embedded") for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503
