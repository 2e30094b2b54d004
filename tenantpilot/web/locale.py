"""Words and times people read: Flask-Babel for plurals (``ngettext``) and the viewer's
time zone.

The browser reports its IANA zone in the ``tp_tz`` cookie (``static/app.js``); the server
renders absolute times in that zone and reads datetime pickers in it. Without the cookie
(first page, no JavaScript) times are UTC and say so.
"""
from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import request
from flask_babel import Babel

TZ_COOKIE = "tp_tz"

babel = Babel()


@lru_cache(maxsize=512)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def valid_zone(name: str | None) -> str | None:
    """``name`` when it is a known IANA zone name, else None (whatever a client sent)."""
    if name and len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "/_+-") for c in name) \
            and _known_zone(name):
        return name
    return None


def viewer_timezone() -> str:
    """The viewer's IANA zone name, or ``UTC`` for a missing or unknown cookie."""
    try:
        name = request.cookies.get(TZ_COOKIE, "")
    except RuntimeError:  # outside a request (CLI, jobs)
        return "UTC"
    return valid_zone(name) or "UTC"


def init_app(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    babel.init_app(app, locale_selector=lambda: "en", timezone_selector=viewer_timezone)
    app.jinja_env.globals["viewer_timezone"] = viewer_timezone
