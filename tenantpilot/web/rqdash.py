"""rq-dashboard (PyPI ``rq-dashboard``) mounted on the system plane at /system/ops/rq.

- It reads the app's own Redis connection (``state.redis``): real Redis, or the embedded
  in-process fakeredis server, so the dashboard works in both modes. rq-dashboard's own
  before_request (which opens a new connection from ``RQ_DASHBOARD_REDIS_URL`` on every
  request and cannot reach fakeredis) is removed.
- An app-level before_request guards every URL of the blueprint (its static files too):
  signed out → the /system login page; without ``platform.access_system_panel`` +
  ``platform.ops.view`` → 403.
- Delete and empty are off twice: ``RQ_DASHBOARD_DISABLE_DELETE`` (the dashboard hides the
  buttons and answers "DISABLED") and a 403 from the guard. The remaining writes (requeue
  one job, requeue all failed jobs, compact) re-run work, so they need
  ``platform.runbooks.run`` as well, must be POSTs (rq-dashboard also accepts GET for
  "requeue all"), and must carry ``X-Requested-With: XMLHttpRequest`` (its jQuery sends
  it; a cross-site form cannot).
- The blueprint is exempt from CSRF (its JavaScript posts without our token) — only
  because it is operator-only and guarded as above.
"""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app, request
from flask_login import current_user
from redis.exceptions import ResponseError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from .headers import RQ_DASHBOARD_POLICY
from .inputs import parse_int

from ..extensions import csrf, login_manager

URL_PREFIX = "/system/ops/rq"
BLUEPRINT = "rq_dashboard"
VIEW_CAPABILITIES = ("platform.access_system_panel", "platform.ops.view")
WRITE_CAPABILITY = "platform.runbooks.run"
REFUSED_ENDPOINTS = frozenset({f"{BLUEPRINT}.delete_job_view", f"{BLUEPRINT}.empty_queue"})
REGISTRIES = frozenset({"queued", "failed", "deferred", "started", "finished", "scheduled", "canceled"})
WRITE_ENDPOINTS = frozenset({f"{BLUEPRINT}.requeue_job_view", f"{BLUEPRINT}.requeue_all",
                             f"{BLUEPRINT}.compact_queue"})


def mount(app) -> None:
    from rq_dashboard import web as rqd

    state = app.extensions["tenantpilot"]
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    # Only a label here (shown in its instance picker; credentials masked by rq-dashboard):
    # the connection itself is the app's.
    app.config["RQ_DASHBOARD_REDIS_URL"] = [app.config.get("REDIS_URL") or "embedded (in-process queue)"]
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    app.redis_conn = state.redis
    app.register_blueprint(rqd.blueprint, url_prefix=URL_PREFIX)
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(BLUEPRINT + "."):
            app.view_functions[endpoint] = _wrapped(view)
    app.before_request_funcs[BLUEPRINT] = [
        f for f in app.before_request_funcs.get(BLUEPRINT, []) if f is not rqd.push_rq_connection
    ] + [_single_instance]
    # Operator-only (guarded below); its jQuery POSTs carry no CSRF token.
    csrf.exempt(rqd.blueprint)
    app.before_request(_guard)


def _guard():
    if request.blueprint != BLUEPRINT:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.can(*VIEW_CAPABILITIES):
        abort(403)
    if request.endpoint in REFUSED_ENDPOINTS:
        abort(403)
    if request.endpoint in WRITE_ENDPOINTS:
        if request.method != "POST":
            abort(405)
        if request.headers.get("X-Requested-With") != "XMLHttpRequest" or not current_user.can(WRITE_CAPABILITY):
            abort(403)
    elif request.method not in ("GET", "HEAD"):
        abort(403)  # any other state change a future rq-dashboard adds is refused by default
    args = request.view_args or {}
    job_id = args.get("job_id")
    if job_id is not None and not Job.exists(job_id, connection=current_app.extensions["tenantpilot"].redis):
        abort(404)  # rq-dashboard itself answers an unknown job id with a 500
    if args.get("registry_name", "queued") not in REGISTRIES or args.get("order", "asc") not in ("asc", "dsc"):
        abort(404)
    for name in ("per_page", "page"):
        if name in args and parse_int(str(args[name]), minimum=1, maximum=10_000) is None:
            abort(404)
    return None


def _wrapped(view):
    """Per app, never modifying rq-dashboard's own functions: its views get their CSP
    (read by Talisman off the view function), and an operation that does not apply
    (requeue a job that has not failed, compact a queue that does not exist), which
    rq-dashboard turns into a 500, answers 409/404 instead."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except InvalidJobOperation:
            abort(409, "Only a failed job can be requeued.")
        except (NoSuchJobError, ResponseError):
            abort(404)

    wrapped.talisman_view_options = {"content_security_policy": RQ_DASHBOARD_POLICY,
                                     "content_security_policy_nonce_in": ["script-src"]}
    return wrapped


def _single_instance():
    """Replaces rq-dashboard's per-request reconnect: one instance, the app's connection."""
    if (request.view_args or {}).get("instance_number") not in (None, 0):
        abort(404)
    current_app.redis_conn = current_app.extensions["tenantpilot"].redis
