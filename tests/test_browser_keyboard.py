"""Browser: the operator's three flows with the keyboard alone (Tab, Shift+Tab, Enter,
Space, arrow keys and typing; no click, no mouse), each focus stop showing a visible focus
ring: start a runbook from the system plane (runbook → preflight → confirm with a reason →
the run page), pause and resume an operational control, and restore a tenant through the
restore wizard on the admin plane."""
import re

import pytest

from tests.browser import chromium, live_server, screenshot

pytestmark = pytest.mark.browser

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || '').trim().slice(0, 60),
          name: el.getAttribute('name'), type: el.getAttribute('type'), checked: !!el.checked, value: el.value,
          visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2};
}"""
MATCHES = """([selector, text]) => {
  const el = document.activeElement;
  return !!el && el !== document.body && el.matches(selector)
    && (!text || (el.innerText || el.value || '').includes(text));
}"""


class Keyboard:
    """Key presses only; counts them per flow."""

    def __init__(self, page):
        self.page, self.presses = page, 0

    def press(self, key: str):
        self.page.keyboard.press(key)
        self.presses += 1

    def type(self, text: str):
        self.page.keyboard.type(text)
        self.presses += len(text)

    def focused(self) -> dict | None:
        return self.page.evaluate(FOCUSED)

    def assert_focus(self, selector: str, text: str | None = None):
        """The focus is (or, after an htmx swap settles, comes) on ``selector``, visibly."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(MATCHES, arg=[selector, text], timeout=2000)
        except PlaywrightTimeout:
            raise AssertionError(f"focus on {self.focused()}, expected {selector} {text or ''}") from None
        focused = self.focused()
        assert focused["visible"], f"no visible focus ring on {focused}"

    def tab_to(self, selector: str, text: str | None = None, limit: int = 120, key: str = "Tab"):
        """Tab (or ``key``) until the focus is on ``selector`` (with ``text``); every stop on
        the way must show its focus ring."""
        for _ in range(limit):
            self.press(key)
            focused = self.focused()
            assert focused is None or focused["visible"], f"no visible focus ring on {focused}"
            if self.page.evaluate(MATCHES, [selector, text]):
                return
        raise AssertionError(f"{key} never reached {selector} {text or ''}; last focus: {self.focused()}")

    def activate(self, key: str = "Enter", url: str | None = None):
        """Press ``key`` on the focused element; with ``url``, wait for that page to load."""
        if url is None:
            self.press(key)
            return
        pattern = re.compile(url)
        with self.page.expect_navigation(url=lambda u: bool(pattern.search(u.split("#")[0]))):
            self.press(key)  # (a URL keeps the #content of "Skip to content" across a redirect)
        self.page.wait_for_load_state("networkidle")

    def skip_to_content(self):
        """The first Tab stop of a page is "Skip to content"; Enter moves on to the content.
        (A page reached through a redirect kept the #content of the last skip: it opens there.)"""
        if self.page.evaluate("location.hash") == "#content":
            return
        self.press("Tab")
        self.assert_focus("a.skip-link", "Skip to content")
        self.press("Enter")

    def sign_in(self, base: str, plane: str, email: str, password: str, home: str):
        self.page.goto(f"{base}/{plane}/login", wait_until="networkidle")
        self.assert_focus("#email")  # autofocus
        self.type(email)
        self.press("Tab")
        self.type(password)
        self.activate("Enter", url=home)

    def choose_radio(self, name: str, value: str):
        """Arrow keys through a focused radio group until ``value`` is checked."""
        for _ in range(10):
            focused = self.focused()
            assert focused and focused["name"] == name, f"focus on {focused}, not the {name} radios"
            if focused["value"] == value and focused["checked"]:
                return
            self.press("ArrowDown")
        raise AssertionError(f"{name}={value} never checked")

    def choose_option(self, value: str):
        """Arrow keys on a focused (closed) <select> until ``value`` is selected."""
        for _ in range(30):
            if self.focused()["value"] == value:
                return
            self.press("ArrowDown")
        raise AssertionError(f"option {value} never selected; at {self.focused()}")


@pytest.fixture
def seeded(app):
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    return app


def test_runbook_start_with_the_keyboard_alone(seeded, tmp_path):
    with live_server(seeded) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        kb = Keyboard(page)
        kb.sign_in(base, "system", "ops@demo.test", "demo-ops-pass", home=r"/system/$")

        kb.tab_to("header nav a", "Runbooks")
        kb.activate("Enter", url=r"/system/ops/runbooks$")
        kb.press("Tab")  # the first stop: "Skip to content", shown while it has the focus
        kb.assert_focus("a.skip-link")
        screenshot(page, "keyboard-skip-link")
        kb.press("Enter")
        kb.tab_to("[data-runbook='ops.pipeline_canary'] a[role=button]", "Preflight")
        kb.activate("Enter", url=r"/ops\.pipeline_canary/preflight$")

        kb.skip_to_content()
        kb.tab_to("input[name=kind]")  # the scope radios: the checked one takes the focus
        kb.choose_radio("kind", "all_tenants")
        kb.tab_to("button[type=submit]", "Run preflight")
        kb.activate("Enter", url=r"/confirm\?preflight=\d+$")
        assert "Scope:" in page.inner_text("main")

        # An empty confirmation first: the page comes back with the focus on the first error.
        kb.skip_to_content()
        kb.tab_to("button[type=submit]", "Start Pipeline canary")
        kb.activate("Enter", url=r"/confirm$")
        kb.assert_focus("#reason_code[aria-invalid=true]")
        kb.choose_option("SUPPORT")
        kb.press("Tab")
        kb.assert_focus("#reason_text")
        kb.type("Keyboard-only check of the canary")
        kb.press("Tab")
        kb.assert_focus("#confirmation")
        kb.type("CANARY")
        screenshot(page, "keyboard-runbook-confirm")
        kb.activate("Enter", url=r"/system/ops/runs/\d+$")  # Enter in a field submits its form
        assert page.locator("h2").first.inner_text().endswith("Pipeline canary")
        screenshot(page, "keyboard-runbook-run")
    print(f"\nkeyboard: runbook start in {kb.presses} key presses")


def test_pause_and_resume_a_control_with_the_keyboard_alone(seeded, tmp_path):
    key = "findings.lifecycle.backfill"
    card = f"[data-control='{key}']"
    with live_server(seeded) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        kb = Keyboard(page)
        kb.sign_in(base, "system", "ops@demo.test", "demo-ops-pass", home=r"/system/$")
        kb.tab_to("header nav a", "Controls")
        kb.activate("Enter", url=r"/system/ops/controls$")
        page.evaluate("window.__notReloaded = true")

        kb.skip_to_content()
        kb.tab_to(f"{card} a[role=button]", "Pause…")
        kb.activate("Space")  # a link that looks like a button answers Space too (app.js)
        page.locator(f"{card} [data-step=pause-form]").wait_for()
        kb.assert_focus(f"{card} input[name=scope_type]")  # the step's first field took the focus
        kb.choose_radio("scope_type", "global")
        kb.press("Space")  # checks the focused radio if the arrows did not
        kb.tab_to(f"{card} button[type=submit]", "Review impact")
        kb.activate("Enter")  # no reason yet: its error, with the focus on the field
        page.locator(f"{card} small.field-error").first.wait_for()
        kb.assert_focus(f"{card} textarea[name=reason][aria-invalid=true]")
        kb.type("Keyboard-only pause check")
        kb.tab_to(f"{card} button[type=submit]", "Review impact")
        kb.activate("Enter")
        page.locator(f"{card} [data-step=pause-review]").wait_for()
        kb.assert_focus(f"{card} h3", "Review impact")
        kb.tab_to(f"{card} button[type=submit]", "Confirm pause")
        assert page.evaluate("window.__notReloaded") is True  # every step so far swapped in place
        screenshot(page, "keyboard-control-review")
        kb.activate("Enter", url=r"/system/ops/controls$")
        page.locator(f"{card} [data-state=paused-globally]").wait_for()

        kb.skip_to_content()
        kb.tab_to(f"{card} [data-pauses] button[type=submit]", "Resume")
        kb.activate("Enter")
        page.locator(f"{card} [data-step=resume-review]").wait_for()
        kb.assert_focus(f"{card} h3", "Resume globally")
        kb.tab_to(f"{card} button[type=submit]", "Confirm resume")
        kb.activate("Enter", url=r"/system/ops/controls$")
        page.locator(f"{card} [data-state=enabled]").wait_for()
        assert "resumed globally" in page.inner_text("main")
        screenshot(page, "keyboard-control-resumed")
    print(f"\nkeyboard: pause and resume in {kb.presses} key presses")


def test_restore_through_the_wizard_with_the_keyboard_alone(seeded, tmp_path):
    with live_server(seeded) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        kb = Keyboard(page)
        kb.sign_in(base, "admin", "owner@demo.test", "demo-owner-pass", home=r"/admin/$")

        # The workspace switcher submits itself on change: typing a name on it chooses one.
        kb.skip_to_content()
        kb.tab_to("#workspace_id")
        with page.expect_navigation():
            kb.type("Northwind")
        page.wait_for_load_state("networkidle")
        assert page.inner_text("main h2") == "Northwind Traders"
        kb.skip_to_content()
        kb.tab_to("main table a", "Northwind HQ")
        kb.activate("Enter", url=r"/admin/t/\d+/$")
        kb.skip_to_content()
        kb.tab_to("nav.tenant-tabs a", "Restore")
        kb.activate("Enter", url=r"/restore-runs$")
        kb.skip_to_content()
        kb.tab_to("main a[role=button]", "New restore")
        kb.activate("Enter", url=r"/restore-runs/new$")

        kb.skip_to_content()
        kb.tab_to("input[name=backup_set_id]")  # the newest set is checked
        kb.tab_to("button[type=submit]", "Continue")
        kb.activate("Enter", url=r"/restore-runs/new/scope\?backup_set_id=\d+$")
        kb.skip_to_content()
        kb.tab_to("input[name=scope]")
        kb.choose_radio("scope", "all")
        kb.tab_to("button[type=submit]", "Run safety checks")
        kb.activate("Enter", url=r"/restore-runs/new/checks$")
        assert page.locator("[data-check-status=fail]").count() == 0
        kb.skip_to_content()
        kb.tab_to("button[type=submit]", "Preview changes")
        kb.activate("Enter", url=r"/restore-runs/new/preview$")

        # The confirm form is below the preview: Shift+Tab from the end of the page is shorter.
        kb.press("End")
        kb.tab_to("input[name=acknowledge]", key="Shift+Tab", limit=200)
        kb.press("Space")
        assert kb.focused()["checked"] is True
        kb.tab_to("#tenant_name")
        kb.type("Northwind HQ")
        screenshot(page, "keyboard-restore-confirm")
        kb.tab_to("button[type=submit]", "Execute restore")
        kb.activate("Enter", url=r"/restore-runs/\d+$")
        assert re.fullmatch(r"Restore #\d+", page.inner_text("main hgroup h3"))
        screenshot(page, "keyboard-restore-run")
    print(f"\nkeyboard: restore through the wizard in {kb.presses} key presses")
