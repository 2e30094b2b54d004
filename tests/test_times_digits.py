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
