/* Page behaviour that used to live in inline handlers, which the strict CSP
   (tenantpilot/web/headers.py) blocks. Delegated from document, so it also covers content
   htmx swaps in later. Loaded with defer after htmx. */
(function () {
  "use strict";

  // <select data-autosubmit>: submit its form on change (the workspace switcher).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el instanceof Element && el.matches("[data-autosubmit]") && el.form) {
      el.form.requestSubmit();
    }
  });

  // A "dry run" checkbox relabels its form's submit button: [data-label-dry] / [data-label-live]
  // (and the matching data-class-*), so the button always says what it will do.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof Element) || !box.matches("[data-dry-run-toggle]") || !box.form) return;
    var button = box.form.querySelector("[data-label-dry]");
    if (!button) return;
    var mode = box.checked ? "dry" : "live";
    button.textContent = button.getAttribute("data-label-" + mode);
    button.className = button.getAttribute("data-class-" + mode) || "";
  });

  // Inside [data-swap-422]: a 422 (form with field errors) is swapped in like a 200, so the
  // errors show next to the fields instead of htmx dropping the response.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var el = event.target;
    if (event.detail.xhr.status === 422 && el instanceof Element && el.closest("[data-swap-422]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Keyboard: a link styled as a button (role=button) answers Space like a button does.
  document.addEventListener("keydown", function (event) {
    var el = event.target;
    if (event.key === " " && el instanceof Element && el.matches("a[role=button][href]")) {
      event.preventDefault();
      el.click();
    }
  });

  // Keyboard: after a swap into [data-focus-on-swap], the focus goes to the new step (its
  // first field with an error, else its heading, else its first control) when it was on what
  // asked for the step or was lost with the old content; never when it is elsewhere.
  document.addEventListener("htmx:afterSettle", function (event) {
    var panel = event.detail.target;
    var active = document.activeElement;
    var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!(panel instanceof Element) || !panel.matches("[data-focus-on-swap]")
        || (active && active !== document.body && !(trigger instanceof Element && trigger.contains(active)))) {
      return;
    }
    var next = panel.querySelector("[aria-invalid=true]") || panel.querySelector("[tabindex='-1']")
      || panel.querySelector("a[href], button:not([disabled]), input:not([type=hidden]), select, textarea");
    if (next) {
      next.focus();
    }
  });

  // A page answered with field errors: the focus starts on the first one.
  document.addEventListener("DOMContentLoaded", function () {
    var invalid = document.querySelector("main [aria-invalid=true]");
    if (invalid && !document.querySelector("[autofocus]")) {
      invalid.focus();
    }
  });
})();
