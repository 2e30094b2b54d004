"""Issue 13, "Words": plurals from Babel (never "item(s)"), summary keys shown as labels in
the order the plugin declares (a core fallback for the rest), surfaces shown by label,
and a run's tenant-level "skipped" named apart from its item-level "skipped"."""
import csv
import io
import re

import pytest
from sqlalchemy import select

from tenantpilot import control_service as svc
from tenantpilot import hookimpl, words
from tenantpilot.api import ControlKey, DefinitionError, OperationType, Runbook
from tenantpilot.extensions import db
from tenantpilot.models import Notification, OperationalControlActivation, OperationRun
from tenantpilot.testing import csrf_from, signed_in
from tests.helpers import audit_rows, platform_actor, run_row

KEY = "words.sweep"
OPS = ("ops@example.test", "ops-password-1")
# What the run pages must show, in this order: the ledger's tenant counts, the declared
# labels, the other summary_keys as sentences, the remaining core keys.
EXPECTED_LABELS = ["Tenants done", "Tenants failed", "Widgets fixed", "Widgets skipped (already clean)",
                   "Widgets scanned", "Zeta count", "Widgets failed", "Items processed"]
RAW_KEYS = ("widgets_fixed", "widgets_failed", "zeta_count", "items_failed")


def execute_tenant(job):
    return {"total": 3, "processed": 3, "widgets_fixed": 1, "skipped": 2, "widgets_failed": 0, "zeta_count": 1}


def preflight(scope):
    from tenantpilot.runs import Scope, tenant_universe

    n = len(tenant_universe(Scope(scope["kind"], scope.get("workspace_id"), scope.get("tenant_id"))))
    return {"affected_count": n, "total_count": 3 * n, "estimated_tenants": n}


class WordsPlugin:
    @hookimpl
    def tenantpilot_register_runbooks(self):
        return Runbook(key=KEY, label="Widget sweep", description="Sweeps widgets.",
                       capability="platform.runbooks.words.sweep", confirmation_word="SWEEP",
                       execute_tenant=execute_tenant, preflight=preflight, control_key=KEY,
                       reason_required_scopes=(), tenant_capabilities=("tenant.manage",),
                       approval_scopes=(),  # about words: its all-tenants runs start without a second operator
                       summary_keys=("widgets_fixed", "zeta_count", "widgets_failed"),
                       summary_labels={"widgets_fixed": "Widgets fixed", "skipped": "Widgets skipped (already clean)",
                                       "total": "Widgets scanned"})

    @hookimpl
    def tenantpilot_register_control_keys(self):
        return ControlKey(key=KEY, label="Widget sweep", operation_types=(KEY,),
                          surfaces=("system.runbooks", "admin.widgets", "admin.widget_history"),
                          surface_labels={"admin.widgets": "Widgets tab of each tenant"})


@pytest.fixture
def app(make_app):
    return make_app(plugins=[("words", WordsPlugin())])


@pytest.fixture
def world(app, factory):
    solo, trio = factory.workspace("Solo"), factory.workspace("Trio")
    solo_tenant = factory.tenant(solo, name="Solo tenant")
    trio_tenants = [factory.tenant(trio, name=f"Trio tenant {i}") for i in range(3)]
    factory.platform_user(email=OPS[0], password=OPS[1])
    factory.user(email="solo@example.test", memberships=[(solo, "owner")])
    factory.user(email="trio@example.test", memberships=[(trio, "owner")])
    return {"solo": solo, "trio": trio, "solo_tenant": solo_tenant, "trio_tenants": trio_tenants}


def text_of(html: str) -> str:
    """What a person reads: tags (and their attributes) gone, whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"\( ", "(", re.sub(r" ([,.)])", r"\1", text))


def start_through_the_ui(client, scope: dict) -> tuple[int, list[str]]:
    """Catalog → preflight → confirm → run page, as an operator does; returns the run id
    and every page body seen on the way."""
    pages = [client.get("/system/ops/runbooks").get_data(as_text=True)]
    form = client.get(f"/system/ops/runbooks/{KEY}/preflight").get_data(as_text=True)
    pages.append(form)
    resp = client.post(f"/system/ops/runbooks/{KEY}/preflight", data={**scope, "csrf_token": csrf_from(form)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[-2000:]
    confirm = client.get(resp.headers["Location"]).get_data(as_text=True)
    pages.append(confirm)
    resp = client.post(f"/system/ops/runbooks/{KEY}/confirm", data={
        "csrf_token": csrf_from(confirm), "confirmation": "SWEEP", "reason_code": "DATA_REPAIR",
        "reason_text": "Widget cleanup", "idempotency_token": re.search(r'name="idempotency_token" value="([^"]+)"', confirm).group(1),
        "preflight": re.search(r'name="preflight" type="hidden" value="(\d+)"', confirm).group(1)})
    assert resp.status_code == 302, text_of(resp.get_data(as_text=True))[-1500:]
    assert "/system/ops/runs/" in resp.headers["Location"], resp.headers["Location"]
    return int(resp.headers["Location"].rstrip("/").split("/")[-1]), pages


def kpi_labels(html: str) -> list[str]:
    return re.findall(r'<span class="kpi-label">([^<]*)</span>', html)


# --- a typical flow: one tenant, then three ------------------------------------------------


@pytest.mark.parametrize("workspace, n, tenant_word", [("solo", 1, "tenant"), ("trio", 3, "tenants")])
def test_a_run_reads_in_plurals_from_babel_never_parenthesised(app, world, drain, workspace, n, tenant_word):
    client = signed_in(app, "system", *OPS)
    run_id, pages = start_through_the_ui(client, {"kind": "workspace", "workspace_id": world[workspace].id})
    assert f"Widget sweep: {n} item{'s' if n > 1 else ''} across {n} {tenant_word}" in text_of(pages[-1])
    drain()
    run_page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    shown = text_of(run_page)
    assert f"{n} of {n} {tenant_word} done" in shown
    assert "(0 tenants failed, 0 tenants skipped)" in shown
    pages += [run_page, client.get(f"/system/ops/runs/{run_id}/progress").get_data(as_text=True),
              client.get("/system/ops/runs").get_data(as_text=True), client.get("/system/").get_data(as_text=True),
              client.get("/system/notifications").get_data(as_text=True),
              client.get("/system/ops/controls").get_data(as_text=True),
              client.get("/system/audit").get_data(as_text=True), client.get("/system/account").get_data(as_text=True)]
    assert f"Run #{run_id}: {n} {tenant_word} succeeded, 0 tenants failed, 0 tenants skipped." in text_of(pages[-4])
    assert f"{n}/{n} {tenant_word}" in text_of(pages[-5])  # the console's recent runs
    # The tenant plane: the workspace's tenant count and the run's own page.
    member = signed_in(app, "admin", f"{workspace}@example.test", "user-pass-123")
    index = member.get("/admin/").get_data(as_text=True)
    assert f"{n} {tenant_word}" in text_of(index)
    tenant = world["solo_tenant"] if workspace == "solo" else world["trio_tenants"][0]
    pages += [index, member.get(f"/admin/t/{tenant.id}/").get_data(as_text=True)]
    for body in pages:
        readable = text_of(body)
        assert "(s)" not in readable, readable[max(0, readable.find("(s)") - 200):readable.find("(s)") + 50]
        assert not re.search(r"\b1 (tenants|items|runs|sessions|queues|events)\b", readable), readable


def test_a_single_tenant_run_page_of_both_planes_says_1_tenant(app, world, drain):
    client = signed_in(app, "system", *OPS)
    run_id, _ = start_through_the_ui(client, {"kind": "single_tenant", "tenant_id": world["solo_tenant"].id})
    drain()
    shown = text_of(client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True))
    assert "1 of 1 tenant done (0 tenants failed, 0 tenants skipped)" in shown
    member = signed_in(app, "admin", "solo@example.test", "user-pass-123")
    page = member.get(f"/admin/t/{world['solo_tenant'].id}/runs/{run_id}").get_data(as_text=True)
    assert kpi_labels(page) == EXPECTED_LABELS
    assert "(s)" not in text_of(page)


# --- summary keys as labels, in the declared order ------------------------------------------


def test_run_pages_show_declared_labels_in_order_never_raw_keys(app, world, drain):
    client = signed_in(app, "system", *OPS)
    run_id, _ = start_through_the_ui(client, {"kind": "workspace", "workspace_id": world["trio"].id})
    drain()
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert kpi_labels(page) == EXPECTED_LABELS
    values = dict(re.findall(r'data-count="([a-z_]+)">([\d,]+)<', page))
    assert values == {"tenants": "3", "failed": "0", "widgets_fixed": "3", "skipped": "6", "total": "9",
                      "zeta_count": "3", "widgets_failed": "0", "processed": "9"}  # the keys stay machine-readable
    shown = text_of(page)
    for key in RAW_KEYS:
        assert key not in shown, key
    # Each tenant's own counts: labels, same order, no ledger keys.
    first_tenant_counts = re.search(r'<td><small>(<span data-tenant-count.*?)</small></td>', page).group(1)
    assert re.findall(r'data-tenant-count="([a-z_]+)"', first_tenant_counts) == [
        "widgets_fixed", "skipped", "total", "zeta_count", "widgets_failed", "processed"]
    assert "Widgets fixed 1, Widgets skipped (already clean) 2, Widgets scanned 3" in text_of(first_tenant_counts)
    progress = client.get(f"/system/ops/runs/{run_id}/progress").get_data(as_text=True)
    assert kpi_labels(progress) == EXPECTED_LABELS


def test_summary_rows_fall_back_to_sentences_and_put_unknown_keys_last(app):
    with app.app_context():
        rows = words.summary_rows(KEY, {"zz_top": 1, "items_failed": 2, "total": 9, "tenants": 3, "widgets_fixed": 4,
                                        "aardvarks_seen": 5})
        assert [(k, label) for k, label, _ in rows] == [
            ("tenants", "Tenants done"), ("widgets_fixed", "Widgets fixed"), ("total", "Widgets scanned"),
            ("aardvarks_seen", "Aardvarks seen"), ("items_failed", "Items failed"), ("zz_top", "Zz top")]
        # A run type nobody registers (an uninstalled plugin's old runs): the core labels.
        rows = words.summary_rows("gone.plugin", {"skipped": 2, "failed": 1, "tenants": 4, "processed": 3, "odd_key": 1})
        assert [label for _, label, _ in rows] == ["Tenants done", "Tenants failed", "Items processed",
                                                  "Items skipped", "Odd key"]
    assert words.sentence_label("items_failed") == "Items failed"
    assert words.sentence_label("admin.restore_runs") == "Admin restore runs"


def test_an_old_run_with_keys_nobody_declares_still_reads_as_labels(app, world):
    with app.app_context():
        run = OperationRun(type="gone.plugin", status="completed", outcome="succeeded", run_identity_hash="gone-1",
                           summary_counts={"tenants": 2, "failed": 0, "items_failed": 1, "skipped": 4},
                           failure_summary=[], context={"operation_label": "Gone plugin"}, tenants_total=2,
                           tenants_done=2, tenants_failed=0, tenants_skipped=0)
        db.session.add(run)
        db.session.commit()
        run_id = run.id
    page = signed_in(app, "system", *OPS).get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert kpi_labels(page) == ["Tenants done", "Tenants failed", "Items skipped", "Items failed"]


def test_summary_labels_are_part_of_the_definition_contract():
    common = dict(key="acme.thing", label="Thing", execute_tenant=lambda job: {})
    op = OperationType(**common, summary_keys=("widgets",), summary_labels=[("widgets", "Widgets"), ("items", "Things")])
    assert list(op.summary_labels) == ["widgets", "items"]  # pairs or a dict, order kept, read-only
    with pytest.raises(TypeError):
        op.summary_labels["widgets"] = "x"
    with pytest.raises(DefinitionError, match="neither a core summary key nor one of its summary_keys"):
        OperationType(**common, summary_labels={"widgetz": "Widgets"})
    with pytest.raises(DefinitionError, match="may not relabel 'failed'"):
        OperationType(**common, summary_labels={"failed": "Widgets failed"})
    with pytest.raises(DefinitionError, match="non-empty labels"):
        OperationType(**common, summary_labels={"items": " "})
    rb = Runbook(key="acme.rb", label="Rb", description="", capability="platform.runbooks.acme.rb",
                 execute_tenant=lambda job: {}, preflight=lambda s: {}, confirmation_word="GO",
                 summary_keys=("unchanged",), summary_labels={"unchanged": "Names already clean"})
    assert dict(rb.operation_type().summary_labels) == {"unchanged": "Names already clean"}


def test_a_plugin_with_a_bad_summary_label_fails_start_up_naming_itself(make_app):
    from tenantpilot.plugins import StartupError

    class Bad:
        @hookimpl
        def tenantpilot_register_operation_types(self):
            return OperationType(key="bad.op", label="Bad", execute_tenant=lambda job: {},
                                 summary_labels={"tenants": "Tenants"})

    with pytest.raises(StartupError, match="Plugin 'bad-words'.*may not relabel 'tenants'"):
        make_app(plugins=[("bad-words", Bad())])


def test_built_in_plugins_label_their_counts(make_app):
    app = make_app()  # the entry-point plugins
    with app.app_context():
        registry = app.extensions["tenantpilot"].registry
        assert words.summary_label("skipped", "findings.lifecycle.backfill") == "Findings skipped (already clean)"
        assert words.summary_label("items_failed", "restore.execute") == "Items failed"
        for op in registry.operation_types.values():
            # Every count a built-in operation type declares has a label of its own.
            assert set(op.summary_keys) <= set(op.summary_labels), op.key


# --- the two kinds of "skipped" --------------------------------------------------------------


def test_tenants_skipped_and_items_skipped_are_named_apart(app, world, drain):
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key=KEY, scope_type="workspace",
                                                    workspace_id=world["trio"].id, reason_text="Trio freeze"))
        db.session.commit()
    client = signed_in(app, "system", *OPS)
    run_id, pages = start_through_the_ui(client, {"kind": "all_tenants"})
    assert "Tenants skipped (workspace paused)" in text_of(pages[-1])
    drain()
    run = run_row(app, run_id)
    assert (run.tenants_skipped, run.summary_counts["skipped"]) == (3, 2)  # 3 tenants; 2 widgets of the 4th
    shown = text_of(client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True))
    assert "4 of 4 tenants done (0 tenants failed, 3 tenants skipped)" in shown
    assert "Widgets skipped (already clean) 2" in shown
    assert "Tenant status" in shown  # the tenants table: a tenant's own "skipped" status
    assert not {label.lower() for label in kpi_labels(client.get(f"/system/ops/runs/{run_id}").get_data(
        as_text=True))} & {"skipped", "failed", "tenants"}
    # The CSV: the tenant's status and the item counts under their own headers.
    rows = list(csv.reader(io.StringIO(client.get(f"/system/ops/runs/{run_id}/tenants.csv").get_data(as_text=True))))
    header = rows[0]
    assert header[:6] == ["Tenant ID", "Tenant name", "External ID", "Tenant status", "Reason code", "Message"]
    assert header[6:-2] == ["Widgets fixed", "Widgets skipped (already clean)", "Widgets scanned", "Zeta count",
                            "Widgets failed", "Items processed"]
    by_status = {r[3] for r in rows[1:]}
    assert by_status == {"succeeded", "skipped"}
    skipped_rows = [r for r in rows[1:] if r[3] == "skipped"]
    assert len(skipped_rows) == 3 and all(r[4] == "paused" and r[6:-2] == [""] * 6 for r in skipped_rows)
    [done] = [r for r in rows[1:] if r[3] == "succeeded"]
    assert done[6:-2] == ["1", "2", "3", "1", "0", "3"]
    # The notification counts tenants, and says so.
    with app.app_context():
        body = db.session.scalar(select(Notification.body).where(Notification.run_id == run_id))
    assert body == f"Run #{run_id}: 1 tenant succeeded, 0 tenants failed, 3 tenants skipped."
    [event] = [e for e in audit_rows(app, "platform.ops.runbooks.completed") if e.target_id == str(run_id)]
    assert event.summary == "Widget sweep succeeded: 4 tenants done, 0 failed"


def test_alert_e_mail_counts_read_as_labels(app):
    from tenantpilot.alerts import render_text

    with app.app_context():
        text = render_text({"event": "operations.run.failed", "type": KEY, "label": "Widget sweep", "run_id": 7,
                            "outcome": "partially_succeeded", "tenants": {"total": 3, "failed": 1, "skipped": 1},
                            "counts": {"skipped": 2, "tenants": 3, "failed": 1, "widgets_fixed": 4}, "link": "/x"})
    assert "Tenants: 3 total, 1 failed, 1 skipped" in text
    assert "Counts: Tenants done 3, Tenants failed 1, Widgets fixed 4, Widgets skipped (already clean) 2" in text


# --- surfaces by label -------------------------------------------------------------------------


def test_the_controls_page_shows_surfaces_by_label(app, world):
    page = signed_in(app, "system", *OPS).get("/system/ops/controls").get_data(as_text=True)
    card = re.search(rf'data-control="{re.escape(KEY)}".*?</article>', page, re.S).group(0)
    affects = re.search(r"Affects:(.*?)·", text_of(card)).group(1).strip()
    # Declared label; the core's own page; the fallback of an unknown id: page and plane.
    assert affects == "Runbooks page (system plane), Widgets tab of each tenant, Widget history (tenant plane)"
    assert "admin.widgets" not in text_of(page) and "system.runbooks" not in text_of(page)
    assert 'data-surface="admin.widgets"' in card  # the id stays for scripts and tests
    assert "scopes: Global, Workspace" in text_of(card)


def test_the_built_in_controls_name_their_surfaces(make_app):
    from tenantpilot.testing import Factory

    app = make_app()  # the entry-point plugins: findings and restore declare surfaces
    Factory(app).platform_user(email=OPS[0], password=OPS[1])
    shown = text_of(signed_in(app, "system", *OPS).get("/system/ops/controls").get_data(as_text=True))
    assert "Affects: Restore runs tab of each tenant (tenant plane)" in shown
    assert "Affects: Runbooks page (system plane), Findings tab of each tenant (tenant plane)" in shown
    assert not re.search(r"\b(admin|system)\.[a-z_]+", shown)


def test_audit_detail_of_a_pause_shows_the_surfaces_by_label(app, world):
    with app.app_context():
        from tenantpilot.models import PlatformUser

        ops = db.session.scalar(select(PlatformUser).where(PlatformUser.email == OPS[0]))
    svc_args = (KEY, "global", None, "Widget vendor incident", None, platform_actor(app, ops))
    with app.app_context():
        svc.pause(*svc_args)
    [event] = audit_rows(app, "operational_control.paused")
    shown = text_of(signed_in(app, "system", *OPS).get(f"/system/audit/{event.id}").get_data(as_text=True))
    assert ("Surfaces Runbooks page (system plane), Widgets tab of each tenant, Widget history (tenant plane)"
            in shown)


def test_surface_label_fallbacks(app):
    with app.app_context():
        assert words.surface_label("admin.widgets") == "Widgets tab of each tenant"
        assert words.surface_label("admin.restore_runs") == "Restore runs (tenant plane)"  # not registered here
        assert words.surface_label("system.runbooks") == "Runbooks page (system plane)"
        assert words.surface_label("tenant_dashboard") == "Tenant dashboard (tenant plane)"
        assert words.surface_label("review_packs_page") == "Review packs page"
    with pytest.raises(DefinitionError, match="surface_labels names surfaces it does not list"):
        ControlKey(key="acme.x", label="X", surfaces=("admin.a",), surface_labels={"admin.b": "B"})


def test_the_review_impact_reads_in_plurals(app, world):
    with app.app_context():
        one = svc.impact(KEY, "workspace", world["solo"].id)
        many = svc.impact(KEY, "global", None)
    assert one.sentence == "Widget sweep will affect workspace Solo (1 tenant)"
    assert many.sentence == "Widget sweep will affect 2 workspaces across 4 tenants"
    assert one.runs_sentence == "0 queued or running runs of gated types continue unaffected"
