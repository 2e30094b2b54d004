"""Security headers for both planes (Flask-Talisman).

One strict Content-Security-Policy: scripts and style sheets come from our own origin,
or carry the per-request nonce (``{{ csp_nonce() }}`` in a template); no inline event
handlers, no ``eval``, no inline ``style=""`` attributes; nothing may frame a page
(``frame-ancestors 'none'`` plus ``X-Frame-Options: DENY``); ``nosniff`` everywhere.

rq-dashboard is the one exception, confined to its own URLs: its templates use
``style=""`` attributes and its underscore templates compile with ``new Function``, so its
views get ``'unsafe-eval'`` for scripts and ``'unsafe-inline'`` for styles. It is
operator-only and renders no user-supplied markup. Its views carry the policy themselves
(tenantpilot.web.rqdash wraps them).

The API reference pages (/system/api/v1/docs, /admin/api/v1/docs) are the other one:
Redoc (vendored) styles with injected <style> elements and style="" attributes and builds
its search index in a worker made from a blob: URL, so those two views get
``'unsafe-inline'`` for styles and ``blob:`` for workers; scripts stay 'self' + nonce.
They render only our own OpenAPI documents.
"""
from __future__ import annotations

from flask_talisman import Talisman

BASE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    # Pico draws its form icons as data: SVGs.
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# With a nonce in style-src a browser ignores 'unsafe-inline', so these views put the
# nonce in script-src only (their talisman_view_options).
REDOC_POLICY = {**BASE_POLICY, "style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"}
RQ_DASHBOARD_POLICY = {**BASE_POLICY, "script-src": "'self' 'unsafe-eval'", "style-src": "'self' 'unsafe-inline'"}


def init_app(app) -> Talisman:
    talisman = Talisman()
    talisman.init_app(
        app,
        # HTTPS is the router's job on a PaaS (TENANTPILOT_BEHIND_PROXY); the embedded
        # mode serves plain HTTP on loopback. Cookies get Secure from the plane session
        # interface whenever the request is HTTPS.
        force_https=False,
        session_cookie_secure=False,
        strict_transport_security=True,  # sent on HTTPS responses only
        frame_options="DENY",
        content_security_policy=BASE_POLICY,
        content_security_policy_nonce_in=["script-src", "style-src"],
        referrer_policy="same-origin",
        x_xss_protection=False,  # obsolete; CSP does the job
    )
    return talisman
