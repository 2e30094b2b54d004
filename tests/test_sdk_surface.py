"""One public surface for plugins (issue 14): modules under plugins/ and examples/ import
the core only through ``tenantpilot.sdk``, ``tenantpilot.api`` (definitions),
``from tenantpilot import hookimpl`` and, in tests, ``tenantpilot.testing``. The built-in
plugins use nothing else, so the surface is proven enough by them."""
import ast
from pathlib import Path

import pytest

import tenantpilot.sdk as sdk

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_MODULES = {"tenantpilot.sdk", "tenantpilot.api"}
ALLOWED_IN_TESTS = ALLOWED_MODULES | {"tenantpilot.testing"}


def plugin_sources(tests: bool):
    for base in (ROOT / "plugins", ROOT / "examples"):
        for path in sorted(base.rglob("*.py")):
            parts = set(path.relative_to(ROOT).parts)
            if "build" in parts or any(p.endswith(".egg-info") for p in parts):
                continue
            if ("tests" in parts) == tests:
                yield path


def core_imports(path: Path):
    """(line, what) for every import of the core in a module, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tenantpilot":
            if node.module == "tenantpilot":
                yield node.lineno, node.module, tuple(a.name for a in node.names)
            else:
                yield node.lineno, node.module, ()
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tenantpilot":
                    yield node.lineno, alias.name, ("*",)


def violations(paths, allowed):
    found = []
    for path in paths:
        for line, module, names in core_imports(path):
            if module == "tenantpilot" and set(names) <= {"hookimpl"}:
                continue
            if module not in allowed:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                found.append(f"{where}:{line}: {module}")
    return found


def test_plugin_packages_import_only_the_public_surface():
    paths = list(plugin_sources(tests=False))
    assert len(paths) > 40  # every built-in plugin and the worked example are scanned
    assert violations(paths, ALLOWED_MODULES) == []


def test_plugin_tests_import_only_the_surface_and_the_kit():
    paths = list(plugin_sources(tests=True))
    assert len(paths) >= 30
    assert violations(paths, ALLOWED_IN_TESTS) == []


def test_the_check_catches_an_import_outside_the_surface(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from tenantpilot.extensions import db\nimport tenantpilot.runs\n"
                   "def f():\n    from tenantpilot import seam\n")
    assert violations([bad], ALLOWED_MODULES) == [
        "bad.py:1: tenantpilot.extensions", "bad.py:2: tenantpilot.runs", "bad.py:4: tenantpilot"]


def test_the_surface_is_explicit():
    names = set(sdk.__all__)
    assert {"db", "Tenant", "Scope", "Actor", "start_operation", "record_audit", "record_event", "provider_client",
            "tenant_required", "SafeForm", "utcnow", "hookimpl", "Runbook", "TenantJob"} <= names
    assert all(not n.startswith("_") for n in names)
    print(f"\npublic names in tenantpilot.sdk: {len(names)}")


@pytest.mark.parametrize("name", sorted(sdk.__all__))
def test_every_public_name_resolves(name):
    assert getattr(sdk, name) is not None
