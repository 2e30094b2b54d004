"""Times people read, in one format everywhere.

- ``{{ ts|when }}``: every timestamp on a page. A ``<time>`` element whose ``datetime``
  is :func:`tenantpilot.timeutil.iso_utc` (the same ISO 8601 text with offset that CSV
  exports carry), whose text is the absolute time in the viewer's zone
  (``2026-12-01 18:45 CET``) and whose title is the UTC time to the second, followed by a
  relative hint (``(3 minutes ago)``, ``(in 2 hours)``) that ``static/app.js`` keeps
  current. ``None`` renders as "—".
- ``{{ delta|duration }}``: how long something took or has waited (``2 min 10 sec``).
- :func:`local_text`: the same absolute text for flash messages and other plain text.
- :func:`parse_local`: a ``datetime-local`` picker value read in a zone, as naive UTC.

Stored datetimes are naive UTC (``tenantpilot.timeutil``); the viewer's zone comes from
the ``tp_tz`` cookie (``web/locale.py``) and is UTC without it. Wording and numbers come
from Babel (Flask-Babel's locale), not from hand-made strings.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as babel_format_datetime
from babel.dates import TIMEDELTA_UNITS, format_timedelta
from babel.lists import format_list
from babel.units import format_unit
from flask import g, has_request_context
from flask_babel import get_locale
from markupsafe import Markup, escape

from ..timeutil import iso_utc, utcnow
from .locale import viewer_timezone

ABSOLUTE = "yyyy-MM-dd HH:mm"
EXACT_UTC = "yyyy-MM-dd HH:mm:ss"
PICKER_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
EMPTY = "—"
# Two units at most: 45 sec, 2 min 10 sec, 3 hr 5 min, 2 days 4 hr.
_DURATION_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def _locale():
    try:
        return get_locale() or "en"
    except RuntimeError:  # outside an app context
        return "en"


def _digits(moment: datetime, seconds: bool = False) -> str:
    """``ABSOLUTE`` (or ``EXACT_UTC``) of a moment: the same text Babel gives for those
    all-digit patterns in every locale, at a small fraction of its cost (every row of every
    list shows a time or two)."""
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment.hour:02d}:{moment.minute:02d}"
    return f"{text}:{moment.second:02d}" if seconds else text


def _aware(value: datetime) -> datetime:
    """A stored (naive UTC) or aware datetime as an aware UTC one."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _local(moment: datetime, zone: ZoneInfo, locale) -> str:
    """``2026-12-01 18:45 CET``: the moment in ``zone``, then the zone's abbreviation at that
    moment (CET, CEST, EST, UTC), or the UTC offset where it has no letters (UTC-03:00)."""
    local = moment.astimezone(zone)
    name = local.tzname() or ""
    label = name if name.isalpha() else "UTC" + babel_format_datetime(local, "xxx", tzinfo=zone, locale=locale)
    return f"{_digits(local)} {label}"


def local_text(value: datetime | None, zone: str | None = None) -> str:
    """The absolute time in the viewer's (or the given) zone: ``2026-12-01 18:45 CET``."""
    if value is None:
        return EMPTY
    return _local(_aware(value), ZoneInfo(zone or viewer_timezone()), _locale())


def relative_text(value: datetime, now: datetime | None = None) -> str:
    """``3 minutes ago`` / ``in 2 hours`` (Babel's rounding; app.js repeats it in the page)."""
    return _relative(_aware(value), now or utcnow(), _locale())


def _relative(moment: datetime, now: datetime, locale) -> str:
    delta = moment - _aware(now)
    seconds = delta.total_seconds()
    if abs(seconds) < 1:
        return "just now"
    # Babel's text depends only on the direction, the unit it picks and the rounded amount,
    # so a text is made once per (locale, direction, unit, amount) and then looked up.
    key = (str(locale), seconds >= 0, *_babel_unit(seconds))
    text = _RELATIVE.get(key)
    if text is None:
        text = format_timedelta(delta, add_direction=True, locale=locale)
        if len(_RELATIVE) < 20_000:
            _RELATIVE[key] = text
    return text


_RELATIVE: dict[tuple, str] = {}


def _babel_unit(seconds: float) -> tuple[str, int]:
    """The unit and rounded amount babel.dates.format_timedelta shows for ``seconds``
    (its defaults: threshold 0.85, granularity "second"), chosen the way it chooses."""
    for unit, size in TIMEDELTA_UNITS:
        amount = abs(seconds) / size
        if amount >= 0.85 or unit == "second":
            if unit == "second" and amount > 0:
                amount = max(1, amount)
            return unit, int(round(amount))
    raise AssertionError("unreachable: seconds is the last unit")


def _viewer() -> tuple[ZoneInfo, str]:
    """(zone, locale) of this request, looked up once per request: a list page shows a
    hundred timestamps or more, and each lookup reads the cookie and asks Flask-Babel."""
    if not has_request_context():
        return ZoneInfo(viewer_timezone()), str(_locale())
    found = g.get("_tp_viewer")
    if found is None:
        found = g._tp_viewer = (ZoneInfo(viewer_timezone()), str(_locale()))
    return found


def when(value: datetime | str | None) -> Markup:
    """``{{ ts|when }}``: the one way a timestamp appears on a page. Also takes the ISO
    text that JSON columns hold (``iso_utc`` or ``datetime.isoformat()``)."""
    if value is None or value == "":
        return Markup(EMPTY)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return escape(value)
    moment = _aware(value)
    zone, locale = _viewer()
    # Every part but the relative text is digits, an ISO timestamp or a zone name (letters,
    # or "UTC" and an offset): nothing to escape. An f-string: Markup.format cost more.
    return Markup(f'<span class="when"><time datetime="{iso_utc(moment)}" '
                  f'title="{_digits(moment, seconds=True)} UTC">{_local(moment, zone, locale)}</time> '
                  f'<small class="muted" data-rel>({escape(_relative(moment, utcnow(), locale))})</small></span>')


def duration(value: timedelta | int | float | None) -> str:
    """``{{ delta|duration }}``: a timedelta or seconds as at most two units, Babel's words
    (``45 sec``, ``2 min 10 sec``, ``3 hr 5 min``, ``2 days 4 hr``); None → "—"."""
    if value is None:
        return EMPTY
    seconds = max(int(value.total_seconds() if isinstance(value, timedelta) else value), 0)
    locale = _locale()
    parts = []
    for i, (unit, size) in enumerate(_DURATION_UNITS):
        if seconds >= size or unit == "second":
            amount, rest = divmod(seconds, size)
            parts.append((unit, amount))
            if unit != "second":  # and the next smaller unit, unless it is zero (3 hr, not 3 hr 0 min)
                smaller, smaller_size = _DURATION_UNITS[i + 1]
                if rest // smaller_size:
                    parts.append((smaller, rest // smaller_size))
            break
    return format_list([format_unit(n, f"duration-{unit}", length="short", locale=locale) for unit, n in parts],
                       style="unit-narrow", locale=locale)


def elapsed(start: datetime | None, end: datetime | None = None) -> timedelta | None:
    """From ``start`` to ``end`` (now while it is still going); None without a start."""
    if start is None:
        return None
    return (end or utcnow()) - start


class NotALocalTime(ValueError):
    """A picker value that is no date and time, or no time in that zone."""


def parse_local(raw: str, zone: str) -> datetime:
    """A ``datetime-local`` value (``2030-01-31T18:00``) read in ``zone``, as naive UTC.
    A time the clocks skip (spring forward) raises :class:`NotALocalTime`; a repeated one
    (fall back) is its first occurrence."""
    for fmt in PICKER_FORMATS:
        try:
            local = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        raise NotALocalTime(f"Enter a date and time in {zone}, e.g. 2030-01-31T18:00.")
    tz = ZoneInfo(zone)
    try:
        aware = local.replace(tzinfo=tz, fold=0)
        utc = aware.astimezone(timezone.utc)
        if utc.astimezone(tz).replace(tzinfo=None) != local:
            raise NotALocalTime(f"{local:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks skip it); "
                                "choose another time.")
    except OverflowError:
        raise NotALocalTime(f"Enter a date and time in {zone}, e.g. 2030-01-31T18:00.") from None
    return utc.replace(tzinfo=None)


def register(app) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals["elapsed"] = elapsed
