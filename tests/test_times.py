"""Times (issue 13): every timestamp is a <time datetime> with the absolute time in the
viewer's zone (the tp_tz cookie, UTC without it) and a relative hint; run pages show how
long a run waited and ran; CSV carries ISO 8601 with offset; the expiry picker says and
uses the viewer's zone."""
import csv
import io
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tenantpilot import audit
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationalControlActivation as Activation, OperationRun, OperationRunTenant
from tenantpilot.testing import csrf_from, login
from tenantpilot.timeutil import iso_utc, utcnow
from tenantpilot.web import times
from tests.test_controls import app  # noqa: F401  (the same app fixture: the rename runbook and its control)

KEY = "tests.rename"
REASON = "Provider incident INC-42"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
TIME = re.compile(r'<time datetime="(' + ISO + r')" title="([^"]+)">([^<]+)</time> <small class="muted" data-rel>\(([^)]+)\)</small>')
# A winter run: 12:00:00 UTC is 13:00 in Berlin (CET). Waited 3 s, ran 2 min 10 s.
CREATED = datetime(2026, 1, 15, 12, 0, 0)
STARTED = CREATED + timedelta(seconds=3)
COMPLETED = STARTED + timedelta(minutes=2, seconds=10)


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Northwind")
    tenant = factory.tenant(ws, name="Contoso")
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    member = factory.user(email="owner@example.test", memberships=[(ws, "owner")])
    return {"ws": ws, "tenant": tenant, "member": member}


def signed_in(app, plane="system", email="ops@example.test", password="ops-password-1", zone=None):
    client = app.test_client()
    if zone is not None:
        client.set_cookie("tp_tz", zone)
    assert login(client, plane, email, password).status_code == 302
    return client


def add_run(app, tenant, *, status="completed", created=CREATED, started=STARTED, completed=COMPLETED):
    with app.app_context():
        run = OperationRun(type=KEY, status=status, outcome="succeeded" if status == "completed" else "pending",
                           run_identity_hash=uuid.uuid4().hex, context={"operation_label": "Legacy rename"},
                           tenant_id=tenant.id, workspace_id=tenant.workspace_id, tenants_total=1,
                           tenants_done=1 if status == "completed" else 0,
                           created_at=created, started_at=started, completed_at=completed)
        db.session.add(run)
        db.session.flush()
        db.session.add(OperationRunTenant(run_id=run.id, tenant_id=tenant.id, status="succeeded", accounted=True,
                                          started_at=started, finished_at=completed))
        db.session.commit()
        return run.id


def time_elements(html):
    return TIME.findall(html)


# --- the filter --------------------------------------------------------------------------


def render_when(app, value, zone=None):
    headers = {"Cookie": f"tp_tz={zone}"} if zone is not None else {}
    with app.test_request_context("/", headers=headers):
        return str(times.when(value))


def test_when_renders_a_time_element_in_the_viewers_zone_with_a_relative_hint(app, monkeypatch):
    monkeypatch.setattr(times, "utcnow", lambda: datetime(2026, 12, 1, 17, 48, 0))
    moment = datetime(2026, 12, 1, 17, 45, 0)
    assert render_when(app, moment) == (
        '<span class="when"><time datetime="2026-12-01T17:45:00+00:00" title="2026-12-01 17:45:00 UTC">'
        '2026-12-01 17:45 UTC</time> <small class="muted" data-rel>(3 minutes ago)</small></span>')
    assert '>2026-12-01 18:45 CET</time>' in render_when(app, moment, "Europe/Berlin")
    assert '>2026-07-01 19:45 CEST</time>' in render_when(app, datetime(2026, 7, 1, 17, 45), "Europe/Berlin")
    assert '>2026-12-01 12:45 EST</time>' in render_when(app, moment, "America/New_York")
    # A zone whose abbreviation is only a number says its offset.
    assert '>2026-12-01 14:45 UTC-03:00</time>' in render_when(app, moment, "America/Sao_Paulo")
    # The machine-readable value and the title stay UTC whatever the viewer's zone.
    berlin = render_when(app, moment, "Europe/Berlin")
    assert 'datetime="2026-12-01T17:45:00+00:00" title="2026-12-01 17:45:00 UTC"' in berlin
    assert "(in 2 hours)" in render_when(app, datetime(2026, 12, 1, 19, 48))
    assert "(just now)" in render_when(app, datetime(2026, 12, 1, 17, 48))
    assert render_when(app, None) == "—"
    # ISO text from JSON columns is a timestamp too; anything else is shown escaped, as is.
    assert '>2026-12-01 18:45 CET</time>' in render_when(app, "2026-12-01T17:45:00", "Europe/Berlin")
    assert render_when(app, "<b>soon</b>") == "&lt;b&gt;soon&lt;/b&gt;"


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\\x00",
                                    "<script>alert(1)</script>", "A" * 200, "Europe/Berlín", ""])
def test_an_unknown_or_hostile_zone_cookie_is_utc(app, cookie):
    html = render_when(app, datetime(2026, 12, 1, 17, 45), cookie)
    assert ">2026-12-01 17:45 UTC</time>" in html


@pytest.mark.parametrize("seconds, text", [
    (0, "0 sec"), (3, "3 sec"), (59, "59 sec"), (60, "1 min"), (130, "2 min 10 sec"), (3600, "1 hr"),
    (3 * 3600 + 5 * 60 + 9, "3 hr 5 min"), (2 * 86400 + 4 * 3600, "2 days 4 hr"), (86400 + 59, "1 day"),
    (-5, "0 sec"),
])
def test_durations_are_at_most_two_units(app, seconds, text):
    with app.test_request_context("/"):
        assert times.duration(seconds) == text
        assert times.duration(timedelta(seconds=seconds)) == text
        assert times.duration(None) == "—"


def test_iso_utc_is_iso_8601_with_offset_to_the_second():
    assert iso_utc(datetime(2026, 12, 1, 17, 45, 0, 123456)) == "2026-12-01T17:45:00+00:00"
    aware = datetime(2026, 12, 1, 18, 45, tzinfo=timezone(timedelta(hours=1)))
    assert iso_utc(aware) == "2026-12-01T17:45:00+00:00"
    assert iso_utc(None) == ""


@pytest.mark.parametrize("raw, zone, utc", [
    ("2030-01-15T10:00", "Europe/Berlin", datetime(2030, 1, 15, 9, 0)),  # winter, CET
    ("2030-07-15T10:00", "Europe/Berlin", datetime(2030, 7, 15, 8, 0)),  # summer, CEST
    ("2030-01-15T10:00:30", "America/New_York", datetime(2030, 1, 15, 15, 0, 30)),
    ("2030-01-15T10:00", "UTC", datetime(2030, 1, 15, 10, 0)),
    # Clocks go back: 02:30 happens twice; the first one (still CEST) counts.
    ("2030-10-27T02:30", "Europe/Berlin", datetime(2030, 10, 27, 0, 30)),
])
def test_a_picker_value_is_read_in_its_zone(raw, zone, utc):
    assert times.parse_local(raw, zone) == utc


@pytest.mark.parametrize("raw, zone, message", [
    ("2030-03-31T02:30", "Europe/Berlin", "does not exist in Europe/Berlin"),  # clocks skip 02:00–03:00
    ("tomorrow", "Europe/Berlin", "Enter a date and time in Europe/Berlin"),
    ("2030-02-30T10:00", "UTC", "Enter a date and time in UTC"),
    ("9999-12-31T23:59", "America/New_York", "Enter a date and time"),  # past year 9999 in UTC
    ("0001-01-01T00:30", "Asia/Tokyo", "Enter a date and time"),  # before year 1 in UTC
])
def test_a_picker_value_that_is_no_time_in_its_zone_is_refused(raw, zone, message):
    with pytest.raises(times.NotALocalTime, match=message):
        times.parse_local(raw, zone)


# --- pages -------------------------------------------------------------------------------


def test_run_pages_show_times_and_how_long_the_run_waited_and_ran(app, world):
    run_id = add_run(app, world["tenant"])
    with app.app_context():
        audit.record("platform.ops.runs.cancel", actor=Actor.system("test"), target=("operation_run", run_id, KEY),
                     summary="An event on the run")
        db.session.commit()
    ops = signed_in(app)
    html = ops.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    stamps = time_elements(html)
    assert ("2026-01-15T12:00:00+00:00", "2026-01-15 12:00:00 UTC", "2026-01-15 12:00 UTC") in [s[:3] for s in stamps]
    assert ("2026-01-15T12:02:13+00:00", "2026-01-15 12:02:13 UTC", "2026-01-15 12:02 UTC") in [s[:3] for s in stamps]
    assert all(rel.endswith("ago") or rel == "just now" for *_, rel in stamps), stamps
    assert len(stamps) >= 4  # created, completed, the tenant's finish, the audit event
    assert '<span data-duration="queued">Queued for 3 sec</span>' in html
    assert '<span data-duration="ran">Ran for 2 min 10 sec</span>' in html
    # The live fragment (htmx poll) carries the same line.
    assert "Ran for 2 min 10 sec" in ops.get(f"/system/ops/runs/{run_id}/progress").get_data(as_text=True)

    member = signed_in(app, "admin", "owner@example.test", "user-pass-123")
    html = member.get(f"/admin/t/{world['tenant'].id}/runs/{run_id}").get_data(as_text=True)
    assert "2026-01-15T12:00:00+00:00" in html and "Queued for 3 sec" in html and "Ran for 2 min 10 sec" in html


def test_a_running_and_a_queued_run_say_so(app, world):
    now = utcnow()
    running = add_run(app, world["tenant"], status="running", created=now - timedelta(minutes=5, seconds=4),
                      started=now - timedelta(minutes=5), completed=None)
    queued = add_run(app, world["tenant"], status="queued", created=now - timedelta(seconds=40), started=None,
                     completed=None)
    ops = signed_in(app)
    html = ops.get(f"/system/ops/runs/{running}").get_data(as_text=True)
    assert "Queued for 4 sec" in html and re.search(r'data-duration="running">Running for 5 min( \d+ sec)?<', html)
    assert "Ran for" not in html
    html = ops.get(f"/system/ops/runs/{queued}").get_data(as_text=True)
    assert re.search(r'data-duration="queued">Queued for (40|41|42) sec<', html)
    assert "Running for" not in html and "Ran for" not in html


def test_the_viewers_zone_cookie_is_used_on_pages(app, world):
    run_id = add_run(app, world["tenant"])
    berlin = signed_in(app, zone="Europe/Berlin")
    html = berlin.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert ("2026-01-15T12:00:00+00:00", "2026-01-15 12:00:00 UTC", "2026-01-15 13:00 CET") in \
        [s[:3] for s in time_elements(html)]
    assert "12:00 UTC</time>" not in html
    runs = berlin.get("/system/ops/runs").get_data(as_text=True)
    assert "2026-01-15 13:00 CET</time>" in runs
    member = signed_in(app, "admin", "owner@example.test", "user-pass-123", zone="Asia/Tokyo")
    html = member.get(f"/admin/t/{world['tenant'].id}/runs/{run_id}").get_data(as_text=True)
    assert "2026-01-15 21:00 JST</time>" in html
    # A garbage cookie: UTC, and the page still renders.
    garbage = signed_in(app, zone="../../etc/passwd")
    assert "2026-01-15 12:00 UTC</time>" in garbage.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)


def test_audit_log_console_and_account_pages_use_time_elements(app, world):
    add_run(app, world["tenant"])
    with app.app_context():
        audit.record("platform.test.event", actor=Actor.system("test"), summary="Something happened")
        db.session.commit()
        event_id = max(db.session.scalars(select(AuditLog.id)))
    ops = signed_in(app, zone="Europe/Berlin")
    for path in ("/system/audit", f"/system/audit/{event_id}", "/system/", "/system/ops/runs",
                 "/system/account"):
        html = ops.get(path).get_data(as_text=True)
        stamps = time_elements(html)
        assert stamps, path
        assert all(local.endswith((" CET", " CEST")) for _, _, local, _ in stamps), (path, stamps)


def test_run_csv_has_iso_8601_with_offset(app, world):
    run_id = add_run(app, world["tenant"])
    body = signed_in(app).get(f"/system/ops/runs/{run_id}/tenants.csv").get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(body)))
    assert (row["Started at"], row["Finished at"]) == ("2026-01-15T12:00:03+00:00", "2026-01-15T12:02:13+00:00")
    # The same whatever the viewer's zone: an export is not a page.
    berlin = signed_in(app, zone="Europe/Berlin").get(f"/system/ops/runs/{run_id}/tenants.csv")
    assert berlin.get_data(as_text=True) == body


# --- the expiry picker -------------------------------------------------------------------


def post(client, path, data, htmx=False):
    token = csrf_from(client.get("/system/ops/controls").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data}, headers={"HX-Request": "true"} if htmx else {})


def stored_expiry(app):
    with app.app_context():
        [row] = db.session.scalars(select(Activation)).all()
        return row.expires_at


def test_the_expiry_picker_says_and_uses_the_viewers_zone(app, world):
    client = signed_in(app, zone="Europe/Berlin")
    form = client.get(f"/system/ops/controls/{KEY}/pause").get_data(as_text=True)
    assert "Expires at (Europe/Berlin)" in form and '<input type="hidden" name="tz" value="Europe/Berlin">' in form
    data = {"scope_type": "global", "reason": REASON, "expires_at": "2030-01-15T10:00", "tz": "Europe/Berlin"}
    review = post(client, f"/system/ops/controls/{KEY}/pause", data).get_data(as_text=True)
    assert '<time datetime="2030-01-15T09:00:00+00:00" title="2030-01-15 09:00:00 UTC">2030-01-15 10:00 CET</time>' \
        in review
    assert '<input type="hidden" name="tz" value="Europe/Berlin">' in review
    assert post(client, f"/system/ops/controls/{KEY}/pause/confirm", data).status_code == 302
    assert stored_expiry(app) == datetime(2030, 1, 15, 9, 0)  # 10:00 CET is 09:00 UTC
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "2030-01-15 10:00 CET</time>" in page
    with app.app_context():
        [event] = [e for e in db.session.scalars(select(AuditLog)) if e.action == "operational_control.paused"]
        assert event.meta["expires_at"] == "2030-01-15T09:00:00"  # stored and audited as UTC


def test_the_form_reads_the_expiry_in_the_zone_its_label_named(app, world):
    """A form shown in UTC (first page, before app.js set the cookie) is read in UTC, even
    if the cookie says Berlin by the time it is submitted; without the field, the cookie."""
    client = signed_in(app, zone="Europe/Berlin")
    data = {"scope_type": "global", "reason": REASON, "expires_at": "2030-01-15T10:00", "tz": "UTC"}
    assert post(client, f"/system/ops/controls/{KEY}/pause/confirm", data).status_code == 302
    assert stored_expiry(app) == datetime(2030, 1, 15, 10, 0)
    data = {"scope_type": "global", "reason": REASON, "expires_at": "2030-01-15T10:00"}
    assert post(client, f"/system/ops/controls/{KEY}/pause/confirm", data).status_code == 302
    assert stored_expiry(app) == datetime(2030, 1, 15, 9, 0)


def test_a_garbage_zone_means_utc_for_the_picker(app, world):
    client = signed_in(app, zone="Nowhere/At_All")
    form = client.get(f"/system/ops/controls/{KEY}/pause").get_data(as_text=True)
    assert "Expires at (UTC)" in form
    data = {"scope_type": "global", "reason": REASON, "expires_at": "2030-01-15T10:00", "tz": "<script>"}
    assert post(client, f"/system/ops/controls/{KEY}/pause/confirm", data).status_code == 302
    assert stored_expiry(app) == datetime(2030, 1, 15, 10, 0)


@pytest.mark.parametrize("raw, message", [
    ("2030-03-31T02:30", "does not exist in Europe/Berlin"),
    ("31.01.2030 10:00", "Enter a date and time in Europe/Berlin"),
    ("2030-13-01T10:00", "Enter a date and time in Europe/Berlin"),
    ("9999-12-31T23:59", "Enter a date and time in America/New_York"),
    ("2020-01-15T10:00", "The expiry must be in the future."),
])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_expiry_is_a_field_error_not_a_500(app, world, raw, message, htmx):
    zone = "America/New_York" if raw.startswith("9999") else "Europe/Berlin"
    client = signed_in(app, zone=zone)
    data = {"scope_type": "global", "reason": REASON, "expires_at": raw, "tz": zone}
    for step in ("pause", "pause/confirm"):
        r = post(client, f"/system/ops/controls/{KEY}/{step}", data, htmx=htmx)
        body = r.get_data(as_text=True)
        assert r.status_code == 422, body[-2000:]
        m = re.search(r'<small class="field-error" id="expires_at-tests-rename-error">([^<]*)</small>', body)
        assert m and message in m.group(1).replace("&#39;", "'"), body[-2000:]
        assert f"Expires at ({zone})" in body
    with app.app_context():
        assert db.session.scalars(select(Activation)).all() == []


def test_break_glass_flash_says_the_viewers_time(app, world):
    client = signed_in(app, zone="Europe/Berlin")
    page = client.get("/system/break-glass").get_data(as_text=True)
    client.post("/system/break-glass/start", data={"csrf_token": csrf_from(page), "reason": "Incident INC-42 triage",
                                                  "minutes": "30"})
    html = client.get("/system/").get_data(as_text=True)
    assert re.search(r"Break-glass active until \d{4}-\d\d-\d\d \d\d:\d\d CES?T\.", html), html[:3000]
    assert re.search(r"until <span class=\"when\"><time datetime=\"" + ISO, html)


def test_no_timestamp_is_rendered_the_old_way():
    """Templates render timestamps with |when only: no strftime, isoformat or timeago."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = list((root / "templates").rglob("*.html")) + list((root / "plugins").glob("*/tenantpilot_*/templates/**/*.html"))
    assert len(files) > 50
    offenders = [f"{f.relative_to(root)}: {m}" for f in files if "rq_dashboard" not in f.parts
                 for m in re.findall(r"\{\{[^}]*(?:strftime|isoformat|timeago|replace\('T')[^}]*\}\}", f.read_text())]
    assert offenders == []
