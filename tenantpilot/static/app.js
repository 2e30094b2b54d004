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

  // The viewer's time zone: the server renders times (and reads expiry pickers) in the zone
  // of the tp_tz cookie, UTC without it (tenantpilot/web/locale.py). Set it from the
  // browser's zone whenever they differ, so the next page shows local times.
  var TZ_COOKIE = "tp_tz";
  var ZONE_NAME = /^[A-Za-z0-9_+\/-]{1,64}$/;
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) { return parts[i].slice(eq + 1); }
    }
    return null;
  }
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && ZONE_NAME.test(zone) && cookie(TZ_COOKIE) !== zone) {
      document.cookie = TZ_COOKIE + "=" + zone + "; Path=/; Max-Age=31536000; SameSite=Lax" +
        (location.protocol === "https:" ? "; Secure" : "");
    }
  } catch (e) { /* no Intl: times stay UTC, and say so */ }

  // Relative hints of {{ ts|when }} ("(3 minutes ago)") stay current while a page is open:
  // Babel's rules (tenantpilot/web/times.py), the browser's words for them.
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60], ["second", 1]];
  var relative = null;
  try {
    relative = new Intl.RelativeTimeFormat(document.documentElement.lang || "en", { numeric: "always" });
  } catch (e) { /* older browser: the server's hint stays */ }
  function relativeText(seconds) {
    if (Math.abs(seconds) < 1) { return "just now"; }
    for (var i = 0; i < UNITS.length; i++) {
      var value = Math.abs(seconds) / UNITS[i][1];
      if (value >= 0.85 || UNITS[i][0] === "second") {
        value = Math.max(1, Math.round(value));
        return relative.format(seconds < 0 ? -value : value, UNITS[i][0]);
      }
    }
    return "";
  }
  function refreshHints() {
    if (!relative) { return; }
    var now = Date.now();
    document.querySelectorAll(".when > time[datetime] + [data-rel]").forEach(function (hint) {
      var at = Date.parse(hint.previousElementSibling.getAttribute("datetime"));
      if (!isNaN(at)) { hint.textContent = "(" + relativeText((at - now) / 1000) + ")"; }
    });
  }
  setInterval(refreshHints, 30000);

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
