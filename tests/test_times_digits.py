"""``|when`` writes its all-digit times without Babel (it was most of a list page's
rendering time); the text must stay exactly what Babel writes, in every zone and locale."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantpilot.web.times import ABSOLUTE, EXACT_UTC, _digits

ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham"]
LOCALES = ["en", "de", "ar", "fa", "hi", "ja", "th"]


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(timezone.utc)),
       zone=st.sampled_from(ZONES), locale=st.sampled_from(LOCALES))
def test_digits_are_babels_text(moment, zone, locale):
    tz = ZoneInfo(zone)
    assert _digits(moment.astimezone(tz)) == format_datetime(moment, ABSOLUTE, tzinfo=tz, locale=locale)
    assert _digits(moment, seconds=True) == format_datetime(moment, EXACT_UTC, tzinfo=timezone.utc, locale=locale)



def test_relative_text_is_babels_text():
    """The looked-up relative hint is the text Babel writes for that very delta: a sweep
    through both directions and every unit boundary (51 minutes, 20.4 hours, …) with one
    shared table, so a delta filed under the wrong key shows up as a wrong text."""
    import random
    from datetime import timedelta
    from unittest.mock import patch

    from babel.dates import format_timedelta

    from tenantpilot.web import times

    now = datetime(2026, 12, 2, 12, 0, 0)
    sweep = list(range(1, 7200, 3)) + list(range(7200, 3 * 86400, 97)) + list(range(3 * 86400, 800 * 86400, 3607))
    sweep += [-s for s in sweep]
    random.Random(17).shuffle(sweep)
    for locale in ("en", "de", "ar"):
        with patch.object(times, "_locale", return_value=locale):
            times._RELATIVE.clear()
            for seconds in sweep:
                delta = timedelta(seconds=seconds)
                assert times.relative_text(now + delta, now) == format_timedelta(
                    delta, add_direction=True, locale=locale), (seconds, locale)


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)),
       zone=st.sampled_from(ZONES + ["America/Sao_Paulo", "Asia/Dubai"]))
def test_when_writes_what_the_reference_functions_write(moment, zone):
    """``|when`` looks the viewer's zone and locale up once per request and writes its parts
    without escaping them; the element must still say exactly what ``iso_utc``,
    ``local_text`` and ``relative_text`` say (zones with letters, and without: "-03")."""
    from flask import Flask
    from markupsafe import escape

    from tenantpilot.timeutil import iso_utc
    from tenantpilot.web import locale as web_locale
    from tenantpilot.web import times

    app = Flask(__name__)
    web_locale.init_app(app)
    with app.test_request_context("/", headers={"Cookie": f"tp_tz={zone}"}):
        now = datetime(2026, 12, 2, 12, 0, 0)
        from unittest.mock import patch

        with patch.object(times, "utcnow", return_value=now):
            html = str(times.when(moment))
            html_again = str(times.when(moment))  # the second call reads the per-request lookup
        expected = (f'<span class="when"><time datetime="{iso_utc(moment)}" '
                    f'title="{times._digits(moment, seconds=True)} UTC">{escape(times.local_text(moment, zone))}</time> '
                    f'<small class="muted" data-rel>({escape(times.relative_text(moment, now))})</small></span>')
        assert html == expected == html_again
