"""The plugin manager and registry: every hook is exercised here, duplicates and unknown
hooks fail start-up naming the plugins, templates are overridable."""
import re
from pathlib import Path

import pytest
from flask import Blueprint

from tenantpilot import hookimpl, hookspecs
from tenantpilot.api import (ControlKey, DashboardWidget, DefinitionError, EventFamily, OperationType, Provider,
                             Runbook, ScheduledJob, TenantAction, TenantPage, TenantCapability, WorkspaceAction, Setting)
from tenantpilot.plugins import StartupError
from tenantpilot.testing import login

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("tenantpilot_"))


def runbook(key="acme.cleanup", label="Cleanup"):
    return Runbook(key=key, label=label, description="", capability=f"platform.runbooks.{key}",
                   confirmation_word="CLEAN", execute_tenant=lambda job: {}, preflight=lambda scope: {})


class Contributions:
    """Implements every registration hook once."""

    def __init__(self, tag="a"):
        self.tag = tag
        self.completed = []

    @hookimpl
    def tenantpilot_register_runbooks(self, app):
        return runbook(f"acme.cleanup_{self.tag}")

    @hookimpl
    def tenantpilot_register_control_keys(self, app):
        return ControlKey(key=f"acme.cleanup_{self.tag}", label="Cleanup", operation_types=(f"acme.cleanup_{self.tag}",))

    @hookimpl
    def tenantpilot_register_event_families(self, app):
        return EventFamily(name=f"product.acme_{self.tag}.used", feature_area="acme", label="Acme used",
                           metadata_keys=("kind",))

    @hookimpl
    def tenantpilot_register_operation_types(self, app):
        return OperationType(key=f"acme.sync_{self.tag}", label="Acme sync", execute_tenant=lambda job: {})

    @hookimpl
    def tenantpilot_register_providers(self, app):
        return Provider(name=f"acme_{self.tag}", label="Acme", factory=lambda tenant_id: object())

    @hookimpl
    def tenantpilot_register_dashboard_widgets(self, app):
        return DashboardWidget(key=f"acme.widget_{self.tag}", title="Acme widget", template="acme_widget.html",
                               context=lambda window: {"acme_window": window})

    @hookimpl
    def tenantpilot_register_scheduled_jobs(self, app):
        return ScheduledJob(name=f"acme.tick_{self.tag}", interval_seconds=60, func=lambda: None)

    @hookimpl
    def tenantpilot_register_tenant_pages(self, app):
        return [TenantPage(key=f"acme.assets_{self.tag}", label="Acme assets", endpoint=f"acme_admin_{self.tag}.assets"),
                TenantPage(key=f"acme.secrets_{self.tag}", label="Acme secrets", capability="tenant.manage",
                           endpoint=f"acme_admin_{self.tag}.assets", order=200)]

    @hookimpl
    def tenantpilot_register_tenant_actions(self, app):
        return [TenantAction(key=f"acme.probe_{self.tag}", label="Run acme probe", endpoint=f"acme_admin_{self.tag}.probe",
                             capability="tenant.view", surfaces=("tenant_dashboard",)),
                TenantAction(key=f"acme.reset_{self.tag}", label="Reset acme", endpoint=f"acme_admin_{self.tag}.probe",
                             capability="tenant.manage", order=10)]

    @hookimpl
    def tenantpilot_register_settings(self, app):
        return Setting(f"ACME_{self.tag.upper()}_TIMEOUT", 20, "Seconds before one Acme call times out.", int)

    @hookimpl
    def tenantpilot_register_workspace_actions(self, app):
        return WorkspaceAction(key=f"acme.import_{self.tag}", label="Import from Acme",
                               endpoint=f"acme_admin_{self.tag}.ping", capability="acme.import")

    @hookimpl
    def tenantpilot_register_tenant_capabilities(self, app):
        return TenantCapability(key=f"acme.import_{self.tag}" if self.tag != "a" else "acme.import",
                                label="Import from Acme", roles=("manager",))

    @hookimpl
    def tenantpilot_register_api_blueprints(self, app, plane):
        from tenantpilot.sdk import ApiBlueprint

        bp = ApiBlueprint(f"acme_api_{plane}_{self.tag}", __name__, url_prefix="/acme")

        @bp.route("/ping", methods=["GET"])
        def api_ping():
            """Answers pong."""
            return {"pong": plane}

        return bp

    @hookimpl
    def tenantpilot_register_blueprints(self, app, plane):
        bp = Blueprint(f"acme_{plane}_{self.tag}", __name__, url_prefix="/acme")

        @bp.get("/ping")
        def ping():
            return f"pong from {plane}"

        @bp.get("/t/<int:tenant_id>/assets")
        def assets(tenant_id):
            return "assets"

        @bp.post("/t/<int:tenant_id>/probe")
        @bp.post("/t/<int:tenant_id>/runs/<int:run_id>/probe")
        def probe(tenant_id, run_id=None):
            return f"probed {tenant_id} {run_id}"

        return bp

    @hookimpl
    def tenantpilot_register_commands(self, cli):
        import click

        @cli.command("acme-hello")
        def hello():
            click.echo("hello from acme")

    @hookimpl
    def tenantpilot_run_completed(self, run):
        self.completed.append(run.id)

    @hookimpl
    def tenantpilot_seed_demo(self, app):
        from tenantpilot.extensions import db
        from tenantpilot.models import Workspace

        db.session.add(Workspace(name=f"Acme demo {self.tag}", slug=f"acme-demo-{self.tag}"))
        db.session.commit()


def test_every_hook_is_documented_in_docs_plugins_md():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    missing = [h for h in HOOKS if f"### {h}" not in doc]
    assert not missing, f"undocumented hooks: {missing}"


def test_every_hook_has_a_docstring_and_a_test_here():
    source = Path(__file__).read_text()
    for name in HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"
        assert source.count(f"def {name}(") >= 1, f"{name} is not implemented by this test module"


def test_registration_hooks_feed_the_registry(make_app):
    app = make_app(plugins=[("acme", Contributions())])
    reg = app.extensions["tenantpilot"].registry
    assert "acme.cleanup_a" in reg.runbooks
    assert {"acme.cleanup_a", "acme.sync_a"} <= set(reg.operation_types)  # runbooks are operation types too
    assert "acme.cleanup_a" in reg.control_keys
    assert "product.acme_a.used" in reg.event_families
    assert "acme_a" in reg.providers
    assert [w.key for w in reg.widgets] == ["telemetry.product", "acme.widget_a"]  # the core's own, by order
    assert "acme.tick_a" in reg.scheduled_jobs
    assert [a.key for a in reg.tenant_actions] == ["acme.reset_a", "acme.probe_a"]  # by (order, key)
    assert reg.owners[("tenant action", "acme.probe_a")] == "acme"
    assert "platform.runbooks.acme.cleanup_a" in reg.platform_capabilities
    assert reg.owners[("runbook", "acme.cleanup_a")] == "acme"


def test_blueprints_mount_on_both_planes(make_app):
    app = make_app(plugins=[("acme", Contributions())])
    client = app.test_client()
    assert client.get("/system/acme/ping").get_data(as_text=True) == "pong from system"
    assert client.get("/admin/acme/ping").get_data(as_text=True) == "pong from admin"
    # API blueprints join their plane's document and need that plane's token.
    for plane in ("system", "admin"):
        assert f"/{plane}/api/v1/acme/ping" in client.get(f"/{plane}/api/v1/openapi.json").json["paths"]
        assert client.get(f"/{plane}/api/v1/acme/ping").status_code == 401


def test_commands_hook_adds_a_flask_command(make_app):
    app = make_app(plugins=[("acme", Contributions())])
    result = app.test_cli_runner().invoke(args=["acme-hello"])
    assert result.exit_code == 0 and "hello from acme" in result.output


def test_run_completed_hook_fires_once_per_run(make_app, drain):
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope
    from tenantpilot.testing import Factory

    plugin = Contributions()
    app = make_app(plugins=[("acme", plugin)])
    f = Factory(app)
    f.tenants(f.workspace(), 3)
    with app.app_context():
        run_id = seam.start("acme.cleanup_a", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    drain(app)
    assert plugin.completed == [run_id]


def test_tenant_pages_show_as_tabs_by_capability(make_app):
    from tenantpilot.testing import Factory

    app = make_app(plugins=[("acme", Contributions())])
    f = Factory(app)
    ws = f.workspace()
    tenant = f.tenant(ws)
    f.user(email="ro@example.test", password="readonly-pass-1", memberships=[(ws, "readonly")])
    f.user(email="mgr@example.test", password="manager-pass-1", memberships=[(ws, "manager")])
    readonly, manager = app.test_client(), app.test_client()
    login(readonly, "admin", "ro@example.test", "readonly-pass-1")
    login(manager, "admin", "mgr@example.test", "manager-pass-1")
    ro_page = readonly.get(f"/admin/t/{tenant.id}/").get_data(as_text=True)
    mgr_page = manager.get(f"/admin/t/{tenant.id}/").get_data(as_text=True)
    assert f'href="/admin/acme/t/{tenant.id}/assets"' in ro_page and "Acme secrets" not in ro_page
    assert "Acme assets" in mgr_page and "Acme secrets" in mgr_page
    assert app.extensions["tenantpilot"].registry.tenant_pages[0].key == "acme.assets_a"


def test_workspace_actions_link_from_the_tenant_list_by_capability(make_app):
    """A plugin's workspace action (onboarding's "Onboard a tenant" is one) shows to members
    whose role holds its capability, a capability the plugin registered itself."""
    from tenantpilot.testing import Factory

    app = make_app(plugins=[("acme", Contributions())])
    f = Factory(app)
    ws = f.workspace()
    f.tenant(ws)
    f.user(email="op@example.test", password="operator-pass-1", memberships=[(ws, "operator")])
    f.user(email="mgr@example.test", password="manager-pass-1", memberships=[(ws, "manager")])
    operator, manager = app.test_client(), app.test_client()
    login(operator, "admin", "op@example.test", "operator-pass-1")
    login(manager, "admin", "mgr@example.test", "manager-pass-1")
    link = '<a href="/admin/acme/ping" data-link="acme.import_a">Import from Acme</a>'
    assert link in manager.get("/admin/").get_data(as_text=True)
    assert "Import from Acme" not in operator.get("/admin/").get_data(as_text=True)


def test_tenant_actions_render_as_post_buttons_by_surface_and_capability(make_app):
    from tenantpilot.extensions import db
    from tenantpilot.models import OperationRun
    from tenantpilot.testing import Factory

    app = make_app(plugins=[("acme", Contributions())])
    f = Factory(app)
    ws = f.workspace()
    tenant = f.tenant(ws)
    with app.app_context():
        run = OperationRun(workspace_id=ws.id, tenant_id=tenant.id, type="acme.sync_a", run_identity_hash="x" * 64)
        db.session.add(run)
        db.session.commit()
        run_id = run.id
    f.user(email="ro@example.test", password="readonly-pass-1", memberships=[(ws, "readonly")])
    f.user(email="mgr@example.test", password="manager-pass-1", memberships=[(ws, "manager")])
    readonly, manager = app.test_client(), app.test_client()
    login(readonly, "admin", "ro@example.test", "readonly-pass-1")
    login(manager, "admin", "mgr@example.test", "manager-pass-1")
    form = r'<form method="post" action="{}" class="inline" data-tenant-action="{}">\s*<input type="hidden" name="csrf_token"'
    home = f"/admin/t/{tenant.id}/"
    mgr_home = manager.get(home).get_data(as_text=True)
    assert re.search(form.format(f"/admin/acme/t/{tenant.id}/probe", "acme.probe_a"), mgr_home)
    assert mgr_home.index("Reset acme") < mgr_home.index("Run acme probe")  # by order
    ro_home = readonly.get(home).get_data(as_text=True)
    assert "Run acme probe" in ro_home and "Reset acme" not in ro_home  # tenant.manage only
    mgr_run = manager.get(f"/admin/t/{tenant.id}/runs/{run_id}").get_data(as_text=True)
    assert re.search(form.format(f"/admin/acme/t/{tenant.id}/runs/{run_id}/probe", "acme.reset_a"), mgr_run)
    assert "Run acme probe" not in mgr_run  # a dashboard-only action
    token = re.search(r'name="csrf_token" value="([^"]+)"', mgr_run).group(1)
    assert manager.post(f"/admin/acme/t/{tenant.id}/runs/{run_id}/probe", data={"csrf_token": token}).get_data(
        as_text=True) == f"probed {tenant.id} {run_id}"
    with pytest.raises(DefinitionError, match="unknown surfaces"):
        TenantAction(key="acme.x", label="X", endpoint="x.y", capability="tenant.view", surfaces=("system_console",))


def test_seed_demo_hook_adds_plugin_demo_data_once(make_app):
    from tenantpilot.models import Workspace
    from tests.helpers import count

    app = make_app(plugins=[("acme", Contributions())])
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    assert count(app, Workspace, Workspace.slug == "acme-demo-a") == 1


def test_plugin_migration_branches_join_version_locations(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
    import os

    locations = config.get_main_option("version_locations").split(os.pathsep)
    assert locations[0].endswith("migrations/versions")


def test_dashboard_widget_renders_on_the_console_with_the_window(make_app, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "acme_widget.html").write_text("<p>Acme says {{ ctx.acme_window }}</p>")
    app = make_app(plugins=[("acme", Contributions())])
    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(tmp_path / "tpl")), app.jinja_env.loader])
    from tenantpilot.testing import Factory

    Factory(app).platform_user(email="ops@example.test", password="platform-pass-1")
    client = app.test_client()
    login(client, "system", "ops@example.test", "platform-pass-1")
    body = client.get("/system/?window=7d").get_data(as_text=True)
    assert "Acme widget" in body and "Acme says 7d" in body


def test_scheduled_jobs_run_once_per_slot_across_schedulers(make_app):
    from tenantpilot import scheduler

    calls = []

    class Ticker:
        @hookimpl
        def tenantpilot_register_scheduled_jobs(self, app):
            return ScheduledJob(name="acme.tick", interval_seconds=3600, func=lambda: calls.append(1))

    app = make_app(plugins=[("ticker", Ticker())])
    other_scheduler_app = make_app(plugins=[("ticker", Ticker())])  # a second process, same database
    assert "acme.tick" in scheduler.run_due(app)
    assert "acme.tick" not in scheduler.run_due(other_scheduler_app)
    assert "acme.tick" not in scheduler.run_due(app)
    assert calls == [1]


@pytest.mark.parametrize("kind", ["runbook", "control", "event", "operation type", "provider", "widget",
                                  "tenant page", "tenant action", "scheduled job"])
def test_duplicate_keys_fail_startup_naming_both_plugins(make_app, kind):
    with pytest.raises(StartupError) as err:
        a, b = Contributions("same"), Contributions("same")
        make_app(plugins=[("first-plugin", a), ("second-plugin", b)])
    # The first collision found is reported; every kind collides here, so check the names.
    message = str(err.value)
    assert "first-plugin" in message and "second-plugin" in message and "Duplicate" in message
    # And each kind on its own:
    only = {
        "runbook": "tenantpilot_register_runbooks", "control": "tenantpilot_register_control_keys",
        "event": "tenantpilot_register_event_families", "operation type": "tenantpilot_register_operation_types",
        "provider": "tenantpilot_register_providers", "widget": "tenantpilot_register_dashboard_widgets",
        "tenant page": "tenantpilot_register_tenant_pages",
        "tenant action": "tenantpilot_register_tenant_actions",
        "scheduled job": "tenantpilot_register_scheduled_jobs",
    }[kind]
    impl = getattr(Contributions("x"), only)

    class One:
        pass

    setattr(One, only, hookimpl(lambda self, app: impl(app)))
    # pluggy calls the later registration first (LIFO), so either may be named first.
    with pytest.raises(StartupError, match=rf"Duplicate {kind} key .*plugins '(one' and 'two|two' and 'one)'"):
        make_app(plugins=[("one", One()), ("two", One())])


def test_unknown_hook_implementation_fails_startup(make_app):
    class Misspelt:
        @hookimpl
        def tenantpilot_register_runbok(self, app):
            return []

    with pytest.raises(StartupError, match="misspelt-plugin"):
        make_app(plugins=[("misspelt-plugin", Misspelt())])


def test_malformed_definition_fails_startup_naming_the_plugin(make_app):
    class Bad:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return runbook(key="NotDotted")

    with pytest.raises(StartupError, match="bad-plugin.*dotted"):
        make_app(plugins=[("bad-plugin", Bad())])
    with pytest.raises(DefinitionError):
        ScheduledJob(name="acme.tick", interval_seconds=0, func=lambda: None)


def test_operation_gated_by_unknown_control_fails_startup(make_app):
    class Gated:
        @hookimpl
        def tenantpilot_register_operation_types(self, app):
            return OperationType(key="acme.gated", label="Gated", execute_tenant=lambda j: {}, control_key="acme.nope")

    with pytest.raises(StartupError, match="gated-plugin.*unknown control key 'acme.nope'"):
        make_app(plugins=[("gated-plugin", Gated())])


def test_entry_point_plugins_load_by_default(app):
    # plugins=None loads the `tenantpilot` entry-point group: the built-in canary is there.
    reg = app.extensions["tenantpilot"].registry
    assert "ops.pipeline_canary" in reg.runbooks
    assert reg.owners[("runbook", "ops.pipeline_canary")] == "canary"


def test_flask_plugins_lists_name_version_and_contributions(app):
    result = app.test_cli_runner().invoke(args=["plugins"])
    assert result.exit_code == 0
    assert re.search(r"^canary \(tenantpilot-canary\) 0\.1\.0$", result.output, re.M)
    assert "+ runbook:ops.pipeline_canary" in result.output
    assert "tenantpilot_register_runbooks" in result.output
    assert "tenantpilot.housekeeping" in result.output


def test_instance_template_overrides_core_and_can_extend_it_with_core_prefix(make_app, tmp_path):
    instance = tmp_path / "inst"
    (instance / "templates").mkdir(parents=True)
    (instance / "templates" / "login.html").write_text(
        '{% extends "core:login.html" %}{% block title %}Acme Ops sign-in{% endblock %}')
    app = make_app(INSTANCE_PATH=str(instance))
    body = app.test_client().get("/system/login").get_data(as_text=True)
    assert "<title>Acme Ops sign-in</title>" in body
    assert "Platform operator sign-in" in body  # the core template's content is still there


def test_plugin_templates_are_found_by_convention(app):
    from tenantpilot.plugins import plugin_template_dirs

    dirs = plugin_template_dirs(app.extensions["tenantpilot"].pm)
    assert any(d.endswith("tenantpilot_canary/templates") for d in dirs)
    with app.app_context():
        assert "Pipeline canary" in app.jinja_env.get_template("tenantpilot_canary/card_detail.html").render()


def _runbook(key):
    return Runbook(key=key, label=key, description="", capability=f"platform.runbooks.{key}", confirmation_word="GO",
                   execute_tenant=lambda job: {}, preflight=lambda s: {})


@pytest.mark.parametrize("first_option, named_first", [("tryfirst", "one"), ("trylast", "two")])
def test_registration_hooks_go_through_pluggy_ordering(make_app, first_option, named_first):
    """tryfirst/trylast decide which registration is the original and which the duplicate."""

    class One:
        @hookimpl(**{first_option: True})
        def tenantpilot_register_runbooks(self, app):
            return _runbook("acme.same")

    class Two:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return _runbook("acme.same")

    other = "two" if named_first == "one" else "one"
    with pytest.raises(StartupError, match=rf"registered by plugins '{named_first}' and '{other}'"):
        make_app(plugins=[("one", One()), ("two", Two())])


def test_a_wrapper_implementation_sees_and_shapes_every_registration(make_app):
    """A policy plugin can wrap a registration hook (pluggy ``wrapper=True``): here it
    withholds one runbook contributed by another plugin, and adds one of its own."""
    seen = []

    class Vendor:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return [_runbook("acme.keep"), _runbook("acme.drop")]

    class Policy:
        @hookimpl(wrapper=True)
        def tenantpilot_register_runbooks(self, app):
            results = yield
            seen.extend(rb.key for value in results for rb in (value if isinstance(value, list) else [value]))
            kept = [[rb for rb in value if rb.key != "acme.drop"] if isinstance(value, list) else value
                    for value in results]
            return kept + [_runbook("policy.extra")]

    app = make_app(plugins=[("vendor", Vendor()), ("policy", Policy())])
    registry = app.extensions["tenantpilot"].registry
    assert "acme.keep" in registry.runbooks and "acme.drop" not in registry.runbooks
    assert "policy.extra" in registry.runbooks and {"acme.keep", "acme.drop"} <= set(seen)
    assert registry.owners[("runbook", "acme.keep")] == "vendor"
    assert registry.owners[("runbook", "policy.extra")] == "a hook wrapper"


def test_the_spec_role_map_holds_with_the_built_in_plugins(app):
    """SPEC 1's role → capability table, now assembled from the core and the plugins
    that enforce each capability (the core names no domain capability)."""
    from tenantpilot.capabilities import CORE_TENANT_CAPABILITIES

    everything = {"tenant.view", "tenant.manage", "restore.execute", "findings.manage", "reports.generate",
                  "review_packs.generate", "support.diagnostics"}
    roles = app.extensions["tenantpilot"].registry.role_capabilities
    assert roles["owner"] == everything | {"workspace.members.manage"}
    assert roles["manager"] == everything
    assert roles["operator"] == {"tenant.view", "findings.manage", "reports.generate", "review_packs.generate",
                                 "support.diagnostics"}
    assert roles["readonly"] == {"tenant.view"}
    assert set(CORE_TENANT_CAPABILITIES) == {"tenant.view", "tenant.manage"}


def test_a_plugin_capability_reaches_the_roles_it_names(make_app, factory):
    from tenantpilot.api import TenantCapability

    class Exports:
        @hookimpl
        def tenantpilot_register_tenant_capabilities(self, app):
            return TenantCapability(key="exports.download", label="Download exports", roles=("operator",))

    app = make_app(plugins=[("exports", Exports())])
    f = type(factory)(app)
    ws = f.workspace()
    from tenantpilot.extensions import db
    from tenantpilot.models import Membership

    users = {role: f.user(memberships=[(ws, role)]).id for role in ("owner", "manager", "operator", "readonly")}
    with app.app_context():
        caps = {role: db.session.query(Membership).filter_by(user_id=uid).one().capabilities
                for role, uid in users.items()}
    assert "exports.download" in caps["owner"] and "exports.download" in caps["operator"]
    assert "exports.download" not in caps["manager"] and "exports.download" not in caps["readonly"]


@pytest.mark.parametrize("kwargs", [{"key": "tenant.secret"}, {"key": "platform.x"}, {"key": "x"},
                                    {"key": "acme.run", "roles": ("admin",)}])
def test_bad_tenant_capabilities_are_refused(kwargs):
    from tenantpilot.api import TenantCapability

    with pytest.raises(DefinitionError):
        TenantCapability(**{"label": "X", **kwargs})


def test_plugin_static_folders_are_served_and_linked_in_every_page(app):
    """<package>/static of each plugin is served under /static/plugins/<package>/ and its
    CSS is linked in the head of every page, so no plugin needs an inline <style>."""
    page = app.test_client().get("/admin/login").get_data(as_text=True)
    head = page.split("</head>")[0]
    for package, css in (("tenantpilot_reports", "reports.css"), ("tenantpilot_onboarding", "onboarding.css"),
                         ("tenantpilot_findings", "findings.css"), ("tenantpilot_review_packs", "review_packs.css")):
        href = f"/static/plugins/{package}/{css}"
        assert f'<link rel="stylesheet" href="{href}">' in head
        r = app.test_client().get(href)
        assert r.status_code == 200 and r.mimetype == "text/css" and len(r.data) > 50
    assert app.test_client().get("/static/plugins/tenantpilot_reports/../plugin.py").status_code == 404
    templates = [p for p in (ROOT / "plugins").rglob("templates/**/*.html")]
    assert templates and not [p for p in templates if "<style" in p.read_text()]
