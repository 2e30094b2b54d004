"""docs/plugins.md stays true: the worked example's files are shown exactly as they are in
examples/tenantpilot-trim-names (the tests of that folder run in the suite)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tenantpilot-trim-names"
DOC = (ROOT / "docs" / "plugins.md").read_text()
SHOWN = ["pyproject.toml", "setup.cfg", "tenantpilot_trim_names/__init__.py", "tenantpilot_trim_names/plugin.py",
         "tenantpilot_trim_names/views.py", "tenantpilot_trim_names/templates/tenantpilot_trim_names/name.html",
         "tenantpilot_trim_names/static/trim_names.css", "tests/test_trim_names.py"]


@pytest.mark.parametrize("name", SHOWN)
def test_each_file_of_the_worked_example_is_shown_as_it_is(name):
    m = re.search(rf"### `{re.escape(name)}`\n\n```[a-z+]*\n(.*?)\n```\n", DOC, re.S)
    assert m, f"docs/plugins.md does not show {name}"
    assert m.group(1) == (EXAMPLE / name).read_text().rstrip()


def test_every_file_of_the_example_package_is_shown():
    files = {str(p.relative_to(EXAMPLE)) for p in (EXAMPLE / "tenantpilot_trim_names").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert files <= set(SHOWN)
