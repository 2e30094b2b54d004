"""Settings (issue 14): every setting the core reads is in the README's configuration
table; every setting a plugin reads is registered (``api.Setting``) with a default and a
line of documentation, read through ``tenantpilot.sdk.setting`` and listed by
``flask plugins``."""
import ast
import re
from pathlib import Path

import pytest

from tenantpilot.api import DefinitionError, Setting

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,80}$")


def env_names_read_by(path: Path) -> set[str]:
    """Names passed to os.environ.get / os.environ[...] / the config helpers _int(...) /
    config.get(...) / setting(...) as string literals."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            target = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            value = node.args[0].value
            if not isinstance(value, str) or not NAME.match(value):
                continue
            if (called == "get" and target in ("os.environ", "current_app.config", "app.config")) \
                    or called in ("_int", "_int_list", "setting", "_setting", "setting_value"):
                names.add(value)
    return names


def test_every_core_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = env_names_read_by(ROOT / "tenantpilot" / "config.py")
    assert len(names) > 20
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == [], f"settings missing from README's configuration table: {missing}"


def test_every_plugin_setting_is_registered_with_a_doc_line(app):
    registry = app.extensions["tenantpilot"].registry
    read = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        if "tests" not in path.parts and "build" not in path.parts:
            read |= env_names_read_by(path)
    read -= {"SECRET_KEY_FALLBACKS"}  # Flask's own key (signing keys), not a plugin setting
    assert read, "no plugin reads a setting? the scan is broken"
    assert sorted(read - set(registry.settings)) == []
    for spec in registry.settings.values():
        assert spec.doc.strip().endswith(".") and len(spec.doc) > 20, spec.name
    assert {"TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS", "TENANTPILOT_GRAPH_TIMEOUT", "FINDINGS_SLA_DAYS",
            "TENANTPILOT_ONBOARDING_REQUIRED_PERMISSIONS"} <= set(registry.settings)


def test_flask_plugins_lists_each_setting_with_its_value_default_and_doc(app, monkeypatch):
    monkeypatch.setenv("TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS", "3")
    out = app.test_cli_runner().invoke(args=["plugins"]).output
    assert "setting TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS = 3 (default 7): Days a generated review pack" in out
    for name in app.extensions["tenantpilot"].registry.settings:
        assert f"setting {name} = " in out


def test_a_setting_comes_from_config_then_environment_then_default(make_app, monkeypatch):
    from tenantpilot.sdk import setting

    app = make_app()
    with app.app_context():
        assert setting("TENANTPILOT_REVIEW_PACK_LINK_SECONDS") == 3600
        monkeypatch.setenv("TENANTPILOT_REVIEW_PACK_LINK_SECONDS", "120")
        assert setting("TENANTPILOT_REVIEW_PACK_LINK_SECONDS") == 120  # parsed: an int
        monkeypatch.setenv("TENANTPILOT_REVIEW_PACK_LINK_SECONDS", "soon")
        with pytest.raises(ValueError, match="TENANTPILOT_REVIEW_PACK_LINK_SECONDS='soon' is not a valid value"):
            setting("TENANTPILOT_REVIEW_PACK_LINK_SECONDS")
        with pytest.raises(KeyError, match="not a registered setting"):
            setting("TENANTPILOT_NOBODY_REGISTERED_THIS")
    app = make_app(TENANTPILOT_REVIEW_PACK_LINK_SECONDS=60)
    with app.app_context():
        assert setting("TENANTPILOT_REVIEW_PACK_LINK_SECONDS") == 60  # app config wins


@pytest.mark.parametrize("kwargs", [{"name": "lower_case", "default": 1, "doc": "A doc line."},
                                    {"name": "TENANTPILOT_X_Y", "default": 1, "doc": "  "},
                                    {"name": "TENANTPILOT_X_Y", "default": 1, "doc": "Doc.", "parse": 3}])
def test_bad_setting_definitions_are_refused(kwargs):
    with pytest.raises(DefinitionError):
        Setting(**kwargs)
