"""Operational controls, management side (SPEC 4): the service (pause/update/resume/expire,
validation, concurrency, impact), the expiry job, `flask controls`, and /system/ops/controls."""
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from tenantpilot import control_service as svc
from tenantpilot import controls
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationalControlActivation as Activation, OperationRun
from tenantpilot.testing import csrf_from, post_form, signed_in
from tenantpilot.timeutil import utcnow
from tests.helpers import audit_rows, count, platform_actor
from tests.support import rename_plugin

OPS = ("system", "ops@example.test", "ops-password-1")

KEY = "tests.rename"
REASON = "Provider incident INC-42"


@pytest.fixture
def app(make_app):
    rename_plugin.ALWAYS_FAIL["on"] = False
    return make_app(plugins=[rename_plugin])


@pytest.fixture
def world(app, factory):
    ws, ws2, ws3 = factory.workspace("Northwind"), factory.workspace("Fabrikam"), factory.workspace("Empty")
    factory.tenants(ws, 4)
    factory.tenants(ws2, 3)
    factory.tenant(ws2, name="Archived one", status="archived")
    factory.tenant(ws2, name="Platform", is_platform=True)
    ops = factory.platform_user(email="ops@example.test", password="ops-password-1")
    nocap = factory.platform_user(email="nocap@example.test", password="nocap-password-1",
                                  capabilities=["platform.access_system_panel", "platform.runbooks.view",
                                                "platform.ops.view"])
    return {"ws": ws, "ws2": ws2, "ws3": ws3, "ops": ops, "nocap": nocap,
            "actor": platform_actor(app, ops)}


def rows(app):
    with app.app_context():
        out = db.session.scalars(select(Activation).order_by(Activation.id)).all()
        for r in out:
            db.session.expunge(r)
        return out


def control_audits(app):
    with app.app_context():
        out = db.session.scalars(select(AuditLog).where(AuditLog.action.like("operational_control.%"))
                                 .order_by(AuditLog.id)).all()
        for r in out:
            db.session.expunge(r)
        return out


def call(app, fn, *args, **kw):
    with app.app_context():
        try:
            return fn(*args, **kw)
        finally:
            db.session.remove()


# --- service -----------------------------------------------------------------------------


def test_pause_update_resume_audit_with_metadata_and_ownership(app, world):
    actor, ws = world["actor"], world["ws"]
    expiry = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    assert call(app, svc.pause, KEY, "global", None, "  " + REASON + "  ", None, actor) == "paused"
    assert call(app, svc.pause, KEY, "global", None, "Still investigating", expiry, actor) == "updated"
    assert call(app, svc.pause, KEY, "workspace", ws.id, "Workspace migration", None, actor) == "paused"
    [g, w] = rows(app)
    assert (g.scope_type, g.workspace_id, g.reason_text, g.expires_at) == ("global", None, "Still investigating", expiry)
    assert (g.created_by, g.updated_by) == (world["ops"].id, world["ops"].id)
    assert (w.scope_type, w.workspace_id) == ("workspace", ws.id)
    assert call(app, svc.resume, KEY, "global", None, actor) == "resumed"
    assert call(app, svc.resume, KEY, "workspace", ws.id, actor) == "resumed"
    assert rows(app) == []

    events = control_audits(app)
    assert [e.action for e in events] == ["operational_control.paused", "operational_control.updated",
                                          "operational_control.paused", "operational_control.resumed",
                                          "operational_control.resumed"]
    for e in events:
        assert {"control_key", "scope_type", "workspace_id", "reason", "expires_at", "actor_id"} <= set(e.meta)
        assert e.meta["control_key"] == KEY and e.meta["actor_id"] == world["ops"].id
        assert e.actor_type == "platform" and e.status == "success" and e.tenant_id is None
    glob = [e for e in events if e.meta["scope_type"] == "global"]
    assert all(e.workspace_id is None and e.meta["workspace_id"] is None for e in glob)  # platform plane
    wsev = [e for e in events if e.meta["scope_type"] == "workspace"]
    assert all(e.workspace_id == ws.id and e.meta["workspace_id"] == ws.id for e in wsev)
    assert events[0].meta["reason"] == REASON and events[0].meta["expires_at"] is None
    assert events[1].meta["expires_at"] == expiry.isoformat() and events[1].meta["previous_reason"] == REASON


def test_resume_of_an_enabled_control_changes_nothing(app, world):
    assert call(app, svc.resume, KEY, "global", None, world["actor"]) == "already_enabled"
    call(app, svc.pause, KEY, "workspace", world["ws"].id, REASON, None, world["actor"])
    before = control_audits(app)
    assert call(app, svc.resume, KEY, "global", None, world["actor"]) == "already_enabled"
    assert call(app, svc.resume, KEY, "workspace", world["ws2"].id, world["actor"]) == "already_enabled"
    assert len(rows(app)) == 1 and len(control_audits(app)) == len(before)


@pytest.mark.parametrize("args, field", [
    ((KEY, "global", None, "x" * 4, None), "reason"),
    ((KEY, "global", None, "x" * 501, None), "reason"),
    ((KEY, "global", None, "   abcd   ", None), "reason"),
    ((KEY, "global", None, REASON, "past"), "expires_at"),
    ((KEY, "workspace", 999999, REASON, None), "workspace_id"),
    ((KEY, "workspace", None, REASON, None), "workspace_id"),
    (("no.such.key", "global", None, REASON, None), "control_key"),
    ((KEY, "tenant", None, REASON, None), "scope_type"),
])
def test_bad_input_raises_field_errors_and_writes_nothing(app, world, args, field):
    args = list(args)
    if args[4] == "past":
        args[4] = utcnow() - timedelta(minutes=1)
    with pytest.raises(svc.ControlValidationError) as exc:
        call(app, svc.pause, *args, world["actor"])
    assert isinstance(exc.value, ValueError) and field in exc.value.errors and exc.value.errors[field]
    assert rows(app) == [] and control_audits(app) == []


def test_a_global_pause_wins_over_a_workspace_pause_whichever_came_first(app, world):
    """SPEC 4 precedence, on the evaluator itself: the decision (and so the reason an
    operator reads) is the global pause's while one is active, in every workspace."""
    actor, ws, ws2 = world["actor"], world["ws"], world["ws2"]

    def decision(workspace_id):
        with app.app_context():
            d = controls.evaluate(KEY, workspace_id)
            return d.effective_state, d.matched_scope, d.workspace_id, d.reason

    call(app, svc.pause, KEY, "workspace", ws.id, "Workspace migration", None, actor)  # first: lower id
    call(app, svc.pause, KEY, "global", None, REASON, None, actor)
    for workspace_id in (ws.id, ws2.id, None):
        assert decision(workspace_id) == ("paused", "global", None, REASON), workspace_id
    call(app, svc.resume, KEY, "global", None, actor)
    assert decision(ws.id) == ("paused", "workspace", ws.id, "Workspace migration")
    assert decision(ws2.id) == ("enabled", "none", None, None)
    assert decision(None) == ("enabled", "none", None, None)  # the platform-wide view: global only
    # The other way round: the workspace pause is the newer row; global still wins.
    call(app, svc.resume, KEY, "workspace", ws.id, actor)
    call(app, svc.pause, KEY, "global", None, REASON, None, actor)
    call(app, svc.pause, KEY, "workspace", ws.id, "Workspace migration", None, actor)
    assert decision(ws.id) == ("paused", "global", None, REASON)
    # An expired global pause no longer wins: the workspace's own pause applies at once.
    with app.app_context():
        db.session.execute(Activation.__table__.update().where(Activation.scope_type == "global")
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert decision(ws.id) == ("paused", "workspace", ws.id, "Workspace migration")
    assert decision(ws2.id) == ("enabled", "none", None, None)


def test_reason_of_5_and_500_characters_is_accepted(app, world):
    assert call(app, svc.pause, KEY, "global", None, "x" * 5, None, world["actor"]) == "paused"
    assert call(app, svc.pause, KEY, "global", None, "y" * 500, None, world["actor"]) == "updated"


def test_scope_not_supported_by_the_control_key(make_app, factory):
    from tenantpilot import hookimpl
    from tenantpilot.api import ControlKey

    class GlobalOnly:
        @hookimpl
        def tenantpilot_register_control_keys(app):
            return ControlKey(key="tests.global_only", label="Global only", scopes=("global",))

    app = make_app(plugins=[GlobalOnly])
    ws = factory.workspace()
    with pytest.raises(svc.ControlValidationError) as exc:
        call(app, svc.pause, "tests.global_only", "workspace", ws.id, REASON, None, Actor.system())
    assert "scope_type" in exc.value.errors and rows(app) == []


def test_two_concurrent_pauses_make_one_row_one_paused_one_updated(app, world, monkeypatch):
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    retried, flush = [], Session.flush

    def counting_flush(self, *args, **kwargs):
        try:
            return flush(self, *args, **kwargs)
        except IntegrityError:
            retried.append(1)  # the losing insert: rolled back and retried as an update
            raise

    monkeypatch.setattr(Session, "flush", counting_flush)
    for round_no in range(3):
        barrier = threading.Barrier(2)
        results, errors = [], []

        def worker(n):
            with app.app_context():
                try:
                    barrier.wait()
                    results.append(svc.pause(KEY, "global", None, f"Operator {n} round {round_no}", None, world["actor"]))
                except Exception as exc:  # pragma: no cover - the assertion below shows it
                    errors.append(exc)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == [] and sorted(results) == ["paused", "updated"], (results, errors)
        assert len(rows(app)) == 1
        assert len(audit_rows(app, "operational_control.paused")) == round_no + 1
        assert len(audit_rows(app, "operational_control.updated")) == round_no + 1
        call(app, svc.resume, KEY, "global", None, world["actor"])
    with app.app_context():
        if db.engine.dialect.name == "postgresql":  # SQLite serialises writers before the insert
            assert retried, "the unique-index race path was never exercised"


def test_pause_replaces_an_expired_row_of_the_scope(app, world):
    call(app, svc.pause, KEY, "global", None, REASON, utcnow() + timedelta(minutes=5), world["actor"])
    with app.app_context():
        db.session.execute(Activation.__table__.update().values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert call(app, svc.pause, KEY, "global", None, "New incident", None, world["actor"]) == "paused"
    [row] = rows(app)
    assert row.reason_text == "New incident" and row.expires_at is None


def test_impact_preview_counts_from_real_data(app, world):
    with app.app_context():
        for i, (status, ws_id) in enumerate([("queued", None), ("running", world["ws"].id),
                                             ("completed", None), ("queued", world["ws2"].id)]):
            db.session.add(OperationRun(type=KEY, status=status, workspace_id=ws_id, run_identity_hash=f"h{i}"))
        db.session.add(OperationRun(type="other.type", status="queued", run_identity_hash="other"))
        db.session.commit()
    glob = call(app, svc.impact, KEY, "global", None)
    # Active non-platform tenants only: 4 + 3 (archived and platform tenants excluded); the
    # empty workspace has none, so 2 workspaces.
    assert (glob.workspaces, glob.tenants, glob.active_runs) == (2, 7, 3)
    assert glob.sentence == "Legacy rename will affect 2 workspaces across 7 tenants"
    assert glob.runs_sentence == "3 queued or running runs of gated types continue unaffected"
    one = call(app, svc.impact, KEY, "workspace", world["ws2"].id)
    assert (one.workspaces, one.tenants, one.active_runs) == (1, 3, 2)  # its run + the all-tenants one
    assert one.sentence == "Legacy rename will affect workspace Fabrikam (3 tenants)"
    assert call(app, svc.gated_operation_types, KEY) == {KEY}


# --- expiry ------------------------------------------------------------------------------


def test_expired_pause_is_ignored_at_once_and_the_job_deletes_and_audits_it(app, world):
    actor, ws = world["actor"], world["ws"]
    call(app, svc.pause, KEY, "global", None, REASON, utcnow() + timedelta(minutes=10), actor)
    call(app, svc.pause, KEY, "workspace", ws.id, "Workspace work", utcnow() + timedelta(minutes=10), actor)
    call(app, svc.pause, KEY, "workspace", world["ws2"].id, "No expiry here", None, actor)
    with app.app_context():
        db.session.execute(Activation.__table__.update().where(Activation.expires_at.is_not(None))
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        # The evaluator already treats them as enabled, before any job ran.
        assert controls.evaluate(KEY, ws.id).effective_state == "enabled"
        assert controls.evaluate(KEY, world["ws2"].id).matched_scope == "workspace"
    assert len(rows(app)) == 3
    job = app.extensions["tenantpilot"].registry.scheduled_jobs["ops.expire_control_pauses"]
    assert job.interval_seconds == 60
    with app.app_context():
        job.func()
    [left] = rows(app)
    assert left.workspace_id == world["ws2"].id
    expired = audit_rows(app, "operational_control.expired")
    assert len(expired) == 2
    by_scope = {e.meta["scope_type"]: e for e in expired}
    assert by_scope["global"].workspace_id is None and by_scope["global"].tenant_id is None
    assert by_scope["workspace"].workspace_id == ws.id
    assert all(e.actor_type == "system" and e.meta["control_key"] == KEY for e in expired)
    assert call(app, svc.expire_due) == 0  # nothing left; no duplicate events
    assert len(audit_rows(app, "operational_control.expired")) == 2


# --- CLI ---------------------------------------------------------------------------------


def test_cli_pause_list_resume_with_the_same_audit(app, world):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["controls", "pause", "--key", KEY, "--global", "--reason", REASON, "--expires-in", "30"])
    assert r.exit_code == 0, r.output
    assert "paused globally" in r.output
    r = runner.invoke(args=["controls", "pause", "--key", KEY, "--workspace", str(world["ws"].id),
                            "--reason", "Workspace work"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["controls", "list"])
    assert r.exit_code == 0
    assert "tests.rename  Legacy rename  [Paused globally]" in r.output
    assert REASON in r.output and "workspace Northwind" in r.output and "no expiry" in r.output
    r = runner.invoke(args=["controls", "resume", "--key", KEY, "--global"])
    assert r.exit_code == 0 and "resumed globally" in r.output
    r = runner.invoke(args=["controls", "resume", "--key", KEY, "--global"])
    assert r.exit_code == 0 and "already enabled" in r.output
    [paused_g, paused_w, resumed] = control_audits(app)
    assert paused_g.actor_type == "system" and paused_g.actor_name == "CLI"
    assert paused_g.workspace_id is None and paused_w.workspace_id == world["ws"].id
    assert resumed.action == "operational_control.resumed" and resumed.meta["control_key"] == KEY
    assert paused_g.meta["expires_at"] is not None


@pytest.mark.parametrize("args, text", [
    (["--key", KEY, "--global", "--reason", "abcd"], "--reason"),
    (["--key", "no.such.key", "--global", "--reason", REASON], "--key"),
    (["--key", KEY, "--workspace", "999999", "--reason", REASON], "--workspace"),
    (["--key", KEY, "--reason", REASON], "exactly one of --global or --workspace"),
    (["--key", KEY, "--global", "--workspace", "1", "--reason", REASON], "exactly one of --global or --workspace"),
    (["--key", KEY, "--global", "--reason", REASON, "--expires-in", "0"], "--expires-in"),
])
def test_cli_bad_input_fails_clearly_and_writes_nothing(app, world, args, text):
    r = app.test_cli_runner().invoke(args=["controls", "pause", *args])
    assert r.exit_code != 0 and text in r.output, r.output
    assert rows(app) == [] and control_audits(app) == []


# --- UI over HTTP ------------------------------------------------------------------------


def post(client, path, data, htmx=False):
    headers = {"HX-Request": "true"} if htmx else {}
    return post_form(client, path, data, page="/system/ops/controls", headers=headers)


def test_page_needs_the_capability_403_without_content(app, world):
    call(app, svc.pause, KEY, "global", None, REASON, None, world["actor"])
    client = signed_in(app, "system", "nocap@example.test", "nocap-password-1")
    token = csrf_from(client.get("/system/ops/runbooks").get_data(as_text=True))
    for method, path in (("get", "/system/ops/controls"), ("get", f"/system/ops/controls/{KEY}/pause"),
                         ("post", f"/system/ops/controls/{KEY}/pause"),
                         ("post", f"/system/ops/controls/{KEY}/pause/confirm"),
                         ("post", f"/system/ops/controls/{KEY}/resume/confirm")):
        for headers in ({}, {"HX-Request": "true"}):
            r = getattr(client, method)(path, data={"scope_type": "global", "reason": "Another reason",
                                                    "csrf_token": token}, headers=headers)
            body = r.get_data(as_text=True)
            assert r.status_code == 403, (path, r.status_code)
            assert "Legacy rename" not in body and REASON not in body and "tests.rename" not in body
    assert 'href="/system/ops/controls"' not in client.get("/system/ops/runbooks").get_data(as_text=True)
    anon = app.test_client()
    assert anon.get("/system/ops/controls").status_code == 302  # to the login
    assert len(rows(app)) == 1


def test_page_shows_cards_state_pauses_and_history(app, world):
    actor = world["actor"]
    client = signed_in(app, *OPS)
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert 'data-control="tests.rename"' in page and ">Enabled<" in page and "Pause…" in page
    assert 'href="/system/ops/controls"' in page  # nav link
    call(app, svc.pause, KEY, "workspace", world["ws"].id, "Workspace work", utcnow() + timedelta(hours=2, minutes=1), actor)
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "Workspace pauses active (1)" in page and "Northwind" in page and "in 2 hours" in page
    assert "Operator" in page and "Workspace work" in page
    call(app, svc.pause, KEY, "global", None, REASON, None, Actor.system("CLI"))
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "Paused globally" in page and "No expiry" in page and ">Global<" in page
    history = page.split("data-history", 1)[1]
    assert history.count("<tr><td>") == 2 and "paused" in history and REASON in history and "CLI" in history


def test_pause_review_confirm_without_javascript(app, world):
    client = signed_in(app, *OPS)
    form = client.get(f"/system/ops/controls/{KEY}/pause")
    assert form.status_code == 200 and "Review impact" in form.get_data(as_text=True)
    data = {"scope_type": "global", "reason": REASON, "expires_at": ""}
    review = post(client, f"/system/ops/controls/{KEY}/pause", data)
    body = review.get_data(as_text=True)
    assert review.status_code == 200 and "<html" in body
    assert "Legacy rename will affect 2 workspaces across 7 tenants" in body
    assert "0 queued or running runs of gated types continue unaffected" in body
    assert rows(app) == []  # review writes nothing
    done = post(client, f"/system/ops/controls/{KEY}/pause/confirm", data)
    assert done.status_code == 302 and done.headers["Location"].endswith("/system/ops/controls")
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "Legacy rename paused globally." in page and "Paused globally" in page
    [event] = audit_rows(app, "operational_control.paused")
    assert event.actor_id == world["ops"].id and event.workspace_id is None and event.meta["reason"] == REASON

    # Resume: preview → confirm.
    preview = post(client, f"/system/ops/controls/{KEY}/resume", {"scope_type": "global", "workspace_id": ""})
    assert preview.status_code == 200 and "Confirm resume" in preview.get_data(as_text=True)
    assert len(rows(app)) == 1
    done = post(client, f"/system/ops/controls/{KEY}/resume/confirm", {"scope_type": "global", "workspace_id": ""})
    assert done.status_code == 302 and rows(app) == []
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "Legacy rename resumed globally." in page and ">Enabled<" in page
    again = post(client, f"/system/ops/controls/{KEY}/resume/confirm", {"scope_type": "global", "workspace_id": ""})
    assert again.status_code == 302
    assert "already enabled" in client.get("/system/ops/controls").get_data(as_text=True)
    assert len(audit_rows(app, "operational_control.resumed")) == 1


def test_htmx_steps_return_fragments_and_workspace_scope(app, world):
    client = signed_in(app, *OPS)
    form = client.get(f"/system/ops/controls/{KEY}/pause", headers={"HX-Request": "true"})
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "<html" not in body and 'data-step="pause-form"' in body
    picker = client.get("/system/ops/controls/workspace-options?workspace_query=fabri&s=x",
                        headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Fabrikam" in picker and "Northwind" not in picker
    data = {"scope_type": "workspace", "workspace_id": str(world["ws2"].id), "reason": "Tenant migration",
            "expires_at": (utcnow() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")}
    review = post(client, f"/system/ops/controls/{KEY}/pause", data, htmx=True)
    body = review.get_data(as_text=True)
    assert review.status_code == 200 and "<html" not in body
    assert "Legacy rename will affect workspace Fabrikam (3 tenants)" in body
    assert f'name="workspace_id" value="{world["ws2"].id}"' in body and 'name="reason" value="Tenant migration"' in body
    done = post(client, f"/system/ops/controls/{KEY}/pause/confirm", data, htmx=True)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/system/ops/controls"
    [row] = rows(app)
    assert row.workspace_id == world["ws2"].id and row.expires_at is not None
    [event] = audit_rows(app, "operational_control.paused")
    assert event.workspace_id == world["ws2"].id and event.tenant_id is None
    # Pausing the same scope again reviews as an update and audits `updated`.
    review = post(client, f"/system/ops/controls/{KEY}/pause", {**data, "reason": "Longer migration"}, htmx=True)
    assert "Confirm update" in review.get_data(as_text=True)
    post(client, f"/system/ops/controls/{KEY}/pause/confirm", {**data, "reason": "Longer migration"}, htmx=True)
    assert len(rows(app)) == 1 and len(audit_rows(app, "operational_control.updated")) == 1


@pytest.mark.parametrize("data, field", [
    ({"scope_type": "global", "reason": "abcd"}, "reason"),
    ({"scope_type": "global", "reason": "x" * 501}, "reason"),
    ({"scope_type": "global", "reason": REASON, "expires_at": "2020-01-01T10:00"}, "expires_at"),
    ({"scope_type": "global", "reason": REASON, "expires_at": "tomorrow"}, "expires_at"),
    ({"scope_type": "workspace", "workspace_id": "999999", "reason": REASON}, "workspace_id"),
    ({"scope_type": "workspace", "workspace_id": "", "reason": REASON}, "workspace_id"),
    ({"reason": REASON}, "scope_type"),
])
@pytest.mark.parametrize("step", ["pause", "pause/confirm"])
def test_ui_bad_input_shows_field_errors_and_writes_nothing(app, world, data, field, step):
    client = signed_in(app, *OPS)
    for htmx in (False, True):
        r = post(client, f"/system/ops/controls/{KEY}/{step}", data, htmx=htmx)
        body = r.get_data(as_text=True)
        assert r.status_code == 422
        assert re.search(rf'class="field-error" id="{field}-tests-rename-error"', body), body[-3000:]
        assert ("<html" in body) is (not htmx)
    assert rows(app) == [] and control_audits(app) == []


def test_unknown_control_key_in_the_ui_is_404(app, world):
    client = signed_in(app, *OPS)
    assert client.get("/system/ops/controls/no.such.key/pause").status_code == 404
    r = post(client, "/system/ops/controls/no.such.key/pause/confirm", {"scope_type": "global", "reason": REASON})
    assert r.status_code == 404 and rows(app) == []


def test_confirm_revalidates_a_stale_review(app, world):
    """The review said 'in 1 minute'; by the time of Confirm the expiry is in the past."""
    client = signed_in(app, *OPS)
    data = {"scope_type": "global", "reason": REASON,
            "expires_at": (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")}
    r = post(client, f"/system/ops/controls/{KEY}/pause/confirm", data)
    assert r.status_code == 422 and "must be in the future" in r.get_data(as_text=True)
    assert rows(app) == []


def test_ui_pause_blocks_the_seam_and_resume_reenables_it(app, world):
    """End to end: a pause made on the page is what the start seam evaluates."""
    client = signed_in(app, *OPS)
    post(client, f"/system/ops/controls/{KEY}/pause/confirm", {"scope_type": "global", "reason": REASON})
    assert "Paused" in client.get("/system/ops/runbooks").get_data(as_text=True)
    with app.app_context():
        assert controls.evaluate(KEY, world["ws"].id).paused
    post(client, f"/system/ops/controls/{KEY}/resume/confirm", {"scope_type": "global"})
    with app.app_context():
        assert not controls.evaluate(KEY, world["ws"].id).paused
    assert count(app, OperationRun) == 0


def test_history_links_into_the_audit_log_with_filters_set(make_app):
    from tenantpilot.testing import Factory, login
    from tests.support import rename_plugin

    app = make_app(plugins=[rename_plugin])
    Factory(app).platform_user(email="lead@example.test", password="lead-password-1")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["controls", "pause", "--key", "tests.rename", "--global",
                               "--reason", "Export vendor incident"]).exit_code == 0
    client = app.test_client()
    login(client, "system", "lead@example.test", "lead-password-1")
    page = client.get("/system/ops/controls").get_data(as_text=True)
    link = "/system/audit?target_type=operational_control&amp;target_id=tests.rename"
    assert link in page
    listing = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    import re

    events = re.findall(r'data-event="(\d+)"', listing)
    assert len(events) == 1 and "<code>operational_control.paused</code>" in listing
    detail = client.get(f"/system/audit/{events[0]}").get_data(as_text=True)
    assert "Export vendor incident" in detail


def _review_form(client, path, data):
    """The rendered confirm form of a review step: its hidden fields, token included."""
    body = post(client, path, data).get_data(as_text=True)
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', body))
    assert fields.get("idempotency_token"), "the confirm form carries an idempotency token"
    return fields


def test_double_submit_of_confirm_pause_and_resume_writes_once(app, world):
    client = signed_in(app, *OPS)
    data = {"scope_type": "global", "reason": REASON, "expires_at": ""}
    confirm = _review_form(client, f"/system/ops/controls/{KEY}/pause", data)
    first = client.post(f"/system/ops/controls/{KEY}/pause/confirm", data=confirm)
    again = client.post(f"/system/ops/controls/{KEY}/pause/confirm", data=confirm)  # double click / refresh
    assert first.status_code == again.status_code == 302
    assert len(audit_rows(app, "operational_control.paused")) == 1
    assert audit_rows(app, "operational_control.updated") == []
    page = client.get("/system/ops/controls").get_data(as_text=True)
    assert "already confirmed; nothing changed" in page

    resume = _review_form(client, f"/system/ops/controls/{KEY}/resume", {"scope_type": "global"})
    for _ in range(2):
        assert client.post(f"/system/ops/controls/{KEY}/resume/confirm", data=resume).status_code == 302
    assert len(audit_rows(app, "operational_control.resumed")) == 1
    # A new review renders a new token: pausing again works.
    confirm = _review_form(client, f"/system/ops/controls/{KEY}/pause", data)
    assert client.post(f"/system/ops/controls/{KEY}/pause/confirm", data=confirm).status_code == 302
    assert len(audit_rows(app, "operational_control.paused")) == 2
