"""The JSON API of both planes (``/system/api/v1``, ``/admin/api/v1``): bearer tokens,
RFC 9457 problems, per-token rate limits and one OpenAPI 3.1 document per plane.

flask-smorest builds each plane's document from the marshmallow schemas that also
validate the requests and shape the responses, so the document cannot drift from the
code. Endpoints are thin: each calls the same service as its page (the start seam,
``control_service``, the audit and telemetry queries), and the page guards
(``platform_required``, ``tenant_required``) apply unchanged, because the token's owner
*is* ``current_user`` here, seen through the token (``TokenIdentity``).

Only a bearer token authenticates an API request; a session cookie sent along is
ignored, which is why the API needs no CSRF token.
"""
from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from flask import Blueprint as FlaskBlueprint
from flask import Flask, g, jsonify, render_template, request, url_for
from flask_smorest import Api
from flask_smorest import Blueprint as _SmorestBlueprint
from werkzeug.exceptions import HTTPException

from .. import tokens
from ..extensions import csrf
from .headers import REDOC_POLICY
from .inputs import ID_MAX, BoundedIntConverter

VERSION = "v1"
PREFIXES = {"system": "/system/api/v1", "admin": "/admin/api/v1"}
CONFIG_PREFIX = {"system": "SYSTEM_API", "admin": "ADMIN_API"}
TITLES = {"system": "TenantPilot Ops platform API", "admin": "TenantPilot Ops tenant API"}
PUBLIC_PATHS = ("/openapi.json", "/docs")  # the document and its reference page: no data
PROBLEM_TYPE = "urn:tenantpilot:problem:"
PROBLEM_JSON = "application/problem+json"

# Stable problem types: clients branch on these, never on the title text.
PROBLEMS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "The request has invalid fields"),
    429: ("rate-limited", "Too many requests"),
    500: ("server-error", "Something went wrong"),
    503: ("unavailable", "Service unavailable"),
}


def api_plane(path: str | None = None) -> str | None:
    """The plane whose API serves ``path`` (the request's by default), or None."""
    path = request.path if path is None else path
    for plane, prefix in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return plane
    return None


# --- problems (RFC 9457) -----------------------------------------------------------------


class ApiProblem(HTTPException):
    """An API error with a stable ``type`` slug and optional fields (``errors`` for 422,
    ``run_id``, ``control_key``…). Raised by endpoints; rendered by ``problem_response``."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any):
        super().__init__(description=detail)
        self.code = status
        self.slug, self.title, self.extra = slug, title, extra


def problem(status: int, slug: str | None = None, title: str | None = None, detail: str = "", **extra: Any):
    """Raise an ``application/problem+json`` answer."""
    default_slug, default_title = PROBLEMS.get(status, PROBLEMS[500])
    raise ApiProblem(status, slug or default_slug, title or default_title, detail, **extra)


def field_errors(errors: dict[str, Any]):
    """Raise a 422 naming each field: ``{"field": ["message", …]}``."""
    clean = {k: v if isinstance(v, list) else [v] for k, v in errors.items()}
    problem(422, detail="; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in clean.items()), errors=clean)


def _flatten_webargs(messages: dict) -> dict[str, list[str]]:
    """webargs reports ``{"json": {"field": [...]}, "query": {...}}``; clients want the field."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            out.setdefault(prefix or "_body", []).extend(str(v) for v in (value if isinstance(value, list) else [value]))

    for location_errors in messages.values():
        walk("", location_errors)
    return out


def problem_response(exc: HTTPException):
    """Any HTTP error on an API path, as a problem document (never an HTML page)."""
    status = exc.code or 500
    if isinstance(exc, ApiProblem):
        slug, title, extra = exc.slug, exc.title, dict(exc.extra)
    else:
        slug, title = PROBLEMS.get(status, ("error", exc.name))
        extra = {}
        data = getattr(exc, "data", None) or {}
        if status == 422 and data.get("messages"):
            extra["errors"] = _flatten_webargs(data["messages"])
    detail = exc.description if isinstance(exc, ApiProblem) else _default_detail(exc, status)
    body = {"type": PROBLEM_TYPE + slug, "title": title, "status": status, "detail": detail or title,
            "instance": request.path, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tenantpilot"'
    for name, value in ((getattr(exc, "data", None) or {}).get("headers") or {}).items():
        response.headers[name] = value
    if status == 429 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(getattr(g, "api_retry_after", 60))
    return response


def _default_detail(exc: HTTPException, status: int) -> str:
    if status == 422:
        return "One or more fields are invalid; see errors."
    if status == 404:
        return "There is nothing here, or you do not have access to it."
    if status == 403:
        return "This token (or its owner) does not hold the capability this needs."
    if status == 429:
        return "This token made too many requests. Wait for Retry-After seconds."
    if status == 413:
        return "The request body is larger than 1 MiB."
    if status >= 500:
        return "An unexpected error occurred. It has been logged; please try again."
    description = exc.description or ""
    # werkzeug's stock texts talk about browsers and URLs; ours say what to fix.
    return description if description and not description.startswith("The ") else PROBLEMS.get(status, ("", exc.name))[1]


# --- who is calling ------------------------------------------------------------------------


@dataclass
class _NarrowMembership:
    """A membership seen through a token: the role's capabilities ∩ the token's."""

    membership: Any
    token_capabilities: frozenset

    def __getattr__(self, name):
        return getattr(self.membership, name)

    @property
    def capabilities(self) -> frozenset[str]:
        return self.membership.capabilities & self.token_capabilities


class TokenIdentity:
    """The token's owner as ``current_user``: same id, name and e-mail, at most the
    token's capabilities. Everything else is the owner's."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user, token):
        self._user = user
        self._token = token
        self.token_capabilities = tokens.token_capabilities(token.plane, token)
        self.api_token = tokens.token_label(token)

    def __getattr__(self, name):
        return getattr(self._user, name)

    def _get_current_object(self):
        return self

    @property
    def is_active(self) -> bool:
        return self._user.is_active

    @property
    def capabilities(self) -> list[str]:  # platform plane
        return sorted(set(self._user.capabilities or ()) & self.token_capabilities)

    def can(self, *capabilities: str) -> bool:
        return self._user.can(*capabilities) and all(c in self.token_capabilities for c in capabilities)

    def membership_for(self, workspace_id: int):  # tenant plane
        membership = self._user.membership_for(workspace_id)
        return None if membership is None else _NarrowMembership(membership, self.token_capabilities)

    def get_id(self) -> str:
        return self._user.get_id()


def _authenticate():
    """before_request on API paths: the bearer token, or a 401 problem."""
    plane = api_plane()
    if plane is None or request.path.endswith(PUBLIC_PATHS):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        problem(401, detail="Send an API token: “Authorization: Bearer <token>”. Create one on the API tokens page.")
    verified = tokens.verify(plane, secret.strip(), request.remote_addr)
    if verified.problem is not None:
        if verified.token is not None:
            tokens.audit_denied(plane, verified.token, verified.problem)
        detail = {
            "invalid": "This token is not valid.",
            "wrong_plane": "This token belongs to the other plane's API.",
            "expired": "This token has expired. Create a new one.",
            "revoked": "This token was revoked.",
            "owner_inactive": "The owner of this token is deactivated.",
        }[verified.problem]
        problem(401, "unauthorized", "Authentication required", detail)
    g.api_token = verified.token
    # Flask-Login's current user for this request: never the session's.
    g._login_user = TokenIdentity(verified.user, verified.token)
    if request.content_length and not request.is_json:
        # webargs would read a body of another type as no body at all ("scope: Missing
        # data"), which hides the real mistake.
        problem(415, detail="Send the body as JSON, with “Content-Type: application/json”.")
    return None


def _audit_forbidden(response):
    """A 403 to a token is a use-denied event: audited with what was asked."""
    token = g.get("api_token")
    if token is not None and response.status_code == 403 and api_plane():
        tokens.audit_denied(api_plane(), token, "missing_capability")
    return response


# --- schemas shared by every endpoint ---------------------------------------------------------


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem document. Extension members (``run_id``, ``control_key``…) are
    allowed, as the RFC says, so the document must not forbid them."""

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(required=True, metadata={"description": "Stable problem type (urn:tenantpilot:problem:…)."})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String()
    instance = ma.fields.String()
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                            metadata={"description": "Field errors of a 422: field → messages."})


class Blueprint(_SmorestBlueprint):
    """An API blueprint (``sdk.ApiBlueprint``): flask-smorest's, mounted under a plane's
    API prefix by ``register``. Every operation documents the problem answers. ``tag``
    is the heading its operations appear under in the document (default: its name)."""

    def __init__(self, *args, tag: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag or self.name

    def route(self, rule, *, parameters=None, tags=None, **options):
        return super().route(rule, parameters=parameters, tags=tags or [self.tag], **options)


class PlaneApi(Api):
    """One plane's API. flask-smorest registers an app-wide JSON error handler; here the
    pages keep their HTML errors and API paths get problems (``errors.register``)."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self):
        return None

    def register_blueprint(self, blp, *, parameters=None, **options):
        """flask-smorest's, with the blueprint's ``tag`` as the document heading (several
        blueprints may share one)."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        blp.register_views_in_doc(self, self._app, self.spec, name=name, parameters=parameters)
        tag = getattr(blp, "tag", None) or name
        if tag not in {t["name"] for t in self.spec._tags}:
            self.spec.tag({"name": tag, "description": blp.description})

    def _register_responses(self):
        # flask-smorest names error responses by status (UNPROCESSABLE_ENTITY on every
        # operation with @arguments): problem documents too, or the document has dangling refs.
        for status in http.HTTPStatus:
            if status >= 400:
                self.spec.components.response(status.name, {
                    "description": status.phrase, "content": {PROBLEM_JSON: {"schema": ProblemSchema}},
                }, lazy=True)
        # Every operation's "default" answer: a problem document, with its own media type.
        self.spec.components.response("DEFAULT_ERROR", {
            "description": "A problem (RFC 9457): 400, 401, 403, 404, 409, 415, 422, 429 or 503; `type` is stable.",
            "content": {PROBLEM_JSON: {"schema": ProblemSchema}},
        }, lazy=True)


def _int_param(converter) -> dict:
    return {"type": "integer", "minimum": 0, "maximum": ID_MAX}


def init_app(app: Flask, pm) -> None:
    """Both planes' Api objects, the core endpoints, the plugins' endpoints, token auth."""
    from . import api_core

    app.before_request(_authenticate)
    app.after_request(_audit_forbidden)
    state = {}
    for plane, prefix in PREFIXES.items():
        cfg = CONFIG_PREFIX[plane]
        app.config.setdefault(f"{cfg}_API_TITLE", TITLES[plane])
        app.config.setdefault(f"{cfg}_API_VERSION", VERSION)
        app.config.setdefault(f"{cfg}_OPENAPI_VERSION", "3.1.0")
        app.config.setdefault(f"{cfg}_OPENAPI_URL_PREFIX", prefix)
        app.config.setdefault(f"{cfg}_OPENAPI_JSON_PATH", "openapi.json")
        api = PlaneApi(app, config_prefix=cfg, spec_kwargs={
            "info": {"description": _DESCRIPTIONS[plane]},
            "servers": [{"url": "/"}],
        })
        api.register_converter(BoundedIntConverter, _int_param)
        api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                       "description": "An API token of this plane."})
        api.spec.options["security"] = [{"bearer": []}]
        state[plane] = api
    app.extensions["tenantpilot_api"] = state
    app.register_blueprint(_reference_pages())
    for plane in PREFIXES:
        for bp in api_core.blueprints(plane):
            register(app, plane, bp)
        for blueprints in pm.hook.tenantpilot_register_api_blueprints(app=app, plane=plane):
            for bp in blueprints if isinstance(blueprints, (list, tuple)) else [blueprints]:
                register(app, plane, bp)


def register(app: Flask, plane: str, bp: Blueprint) -> None:
    """Mount an API blueprint under its plane's prefix and add it to that plane's document."""
    csrf.exempt(bp)
    app.extensions["tenantpilot_api"][plane].register_blueprint(bp, url_prefix=PREFIXES[plane] + (bp.url_prefix or ""))


# --- the reference pages -------------------------------------------------------------------

REDOC_JS = "vendor/redoc/redoc-2.5.4.standalone.js"  # see static/vendor/VERSIONS


def _reference_pages() -> FlaskBlueprint:
    """``api_docs.system`` (/system/api/v1/docs) and ``api_docs.admin`` (/admin/api/v1/docs):
    each plane's OpenAPI document rendered by the vendored Redoc, public like the document
    itself. Redoc injects <style> elements, sets style="" attributes and runs its search
    index in a blob: worker, so these two views (and only they) carry REDOC_POLICY."""
    bp = FlaskBlueprint("api_docs", __name__)

    def make_view(plane: str):
        def view():
            return render_template("api_docs.html", plane=plane, title=TITLES[plane], redoc_js=REDOC_JS,
                                   spec_url=url_for(f"{CONFIG_PREFIX[plane].lower().replace('_', '-')}-api-docs"
                                                    ".openapi_json"))

        view.talisman_view_options = {"content_security_policy": REDOC_POLICY,
                                      "content_security_policy_nonce_in": ["script-src"]}
        return view

    for plane, prefix in PREFIXES.items():
        bp.add_url_rule(f"{prefix}/docs", endpoint=plane, view_func=make_view(plane), methods=["GET"])
    return bp


def api_endpoints(app: Flask) -> list[str]:
    """Endpoints served under an API prefix that need a token (for the rate limit)."""
    out = []
    for rule in app.url_map.iter_rules():
        if api_plane(rule.rule) and not rule.rule.endswith(PUBLIC_PATHS):
            out.append(rule.endpoint)
    return sorted(set(out))


_DESCRIPTIONS = {
    "system": ("Operate the fleet: runbooks (preflight → start through the start seam), runs, operational "
               "controls, audit and telemetry. Authenticate with a platform API token "
               "(`Authorization: Bearer tps_…`), created on /system/api-tokens. Errors are RFC 9457 problem "
               "documents with stable `type` values. See docs/api.md."),
    "admin": ("Work on your tenants: findings, backfills, restores, review packs and support diagnostics. "
              "Authenticate with a tenant API token (`Authorization: Bearer tpa_…`), created on "
              "/admin/api-tokens. Tenants you are not a member of answer 404. See docs/api.md."),
}
