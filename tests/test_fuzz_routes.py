"""Property-based fuzz of every route of the URL map (hypothesis).

An app with every installed plugin (``make_app()``, entry-point plugins) is seeded with
real data (``flask demo seed`` plus runs, backups, reports, packs, restore runs, onboarding
drafts and audit events made through the app itself), then walked as three identities:
anonymous, a tenant-plane workspace owner and a platform operator with every capability.

Discovery: every GET rule is fetched with real ids (from the database, the RQ queues and
the links of other pages); each page is parsed for links (``<a href>``, ``src``,
``hx-get``/``hx-post``, redirect ``Location``), GET forms (their fields become query
parameters) and POST forms (field names and values, options, the CSRF token). Every rule
is then fuzzed per identity and method with hypothesis: path variables get real ids and
hostile values; GET rules get the discovered query parameters (hostile values, duplicates,
unknown names); POST rules get the discovered form fields with the page's CSRF token.

Assertions: no response >= 500 (every failure is collected and listed together with the
app's exception), and no unescaped markup of ours in any page (fetched again afterwards,
as each identity). The figures are printed, written to artifacts/fuzz_summary.txt and
shown in pytest's terminal summary.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict, deque
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from flask import got_request_exception
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.test import EnvironBuilder

from tenantpilot.testing import Factory, csrf_from, login
from tests.fuzz_support import (
    BIG_INTS,
    MARKUP_VALUES,
    NON_ASCII_DIGITS,
    PROJECT_ROOT,
    Failure,
    Raw,
    Recorder,
    build_query,
    build_url,
    describe_exception,
    excerpt,
    hostile,
    hostile_name,
    parse_page,
    rule_vars,
    short,
    split_url,
    stable_seed,
    unescaped_markers,
    value_strategy,
)

# --- budgets (2 cores, PostgreSQL; the whole test should take ~2-3 minutes) ----------
HOME_GET_EXAMPLES = 50    # a rule of the identity's own plane (or outside the planes)
HOME_POST_EXAMPLES = 80
AWAY_EXAMPLES = 6         # a rule of the other plane (the identity is anonymous there)
ANON_EXAMPLES = 14
AUTH_ROUTE_EXAMPLES = 8   # login / logout / sign out everywhere (through a side client)
STATIC_EXAMPLES = 5
CRAWL_PER_RULE = 3        # distinct real URLs fetched per GET rule while discovering
CRAWL_TOTAL = 260         # per identity
RECHECK_PER_RULE = 4      # after the fuzz: pages fetched again for stored markup

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AUTH_WORDS = ("logout", "sign-out", "signout", "sign_out", "log-out")
RQ_WRITE_ENDPOINTS = {"rq_dashboard.requeue_job_view", "rq_dashboard.requeue_all", "rq_dashboard.compact_queue"}
RQ_REGISTRIES = ["queued", "started", "finished", "failed", "deferred", "scheduled", "canceled"]
VALID_TEXT = "Fuzz test reason: routine maintenance check"
FIXED_GUID = str(uuid.UUID("0f0f0f0f-1234-4abc-8def-0123456789ab"))
ARTIFACT = PROJECT_ROOT / "artifacts" / "fuzz_summary.txt"
APP_LOG = PROJECT_ROOT / "artifacts" / "fuzz_app.log"

# Nothing leaves the machine: the Microsoft Graph provider (a tenant connection or an
# onboarding draft may be switched to it by the fuzzer) is pointed at a closed loopback
# port; alert destinations are off. Exceptions become real 500 responses (as in
# production) and are captured through got_request_exception.
APP_CONFIG = dict(
    PROPAGATE_EXCEPTIONS=False,
    TENANTPILOT_GRAPH_AUTHORITY_HOST="https://127.0.0.1:1",
    TENANTPILOT_GRAPH_BASE_URL="https://127.0.0.1:1/v1.0",
    TENANTPILOT_GRAPH_TIMEOUT=2,
    TENANTPILOT_GRAPH_MAX_RETRIES=0,
    TENANTPILOT_GRAPH_BACKOFF=0,
    SMTP_HOST=None,
    ALERT_EMAIL_TO=None,
    ALERT_WEBHOOK_URL=None,
)

SUMMARY: dict = {}  # module-level: the figures of the last run (also in the artifact file)


def plane_of(path: str) -> str | None:
    for plane in ("system", "admin"):
        if path == f"/{plane}" or path.startswith(f"/{plane}/"):
            return plane
    return None


def is_auth_rule(rule) -> bool:
    return rule.endpoint.endswith(".login") or any(w in rule.rule.lower() or w in rule.endpoint.lower()
                                                   for w in AUTH_WORDS)


def is_logout_rule(rule) -> bool:
    return any(w in rule.rule.lower() or w in rule.endpoint.lower() for w in AUTH_WORDS)


class Identity:
    def __init__(self, name, plane, email=None, password=None, client=None):
        self.name, self.plane, self.email, self.password, self.client = name, plane, email, password, client
        self.relogins = 0


class Knowledge:
    """What the walk learnt as one identity."""

    def __init__(self):
        self.combos: dict[str, list[dict]] = defaultdict(list)       # rule key -> view args (str)
        self.params: dict[str, dict[str, list]] = defaultdict(dict)  # rule path -> query params
        self.forms: dict[str, dict[str, list]] = defaultdict(dict)   # rule path -> POST fields
        self.csrf: dict[str, str] = {}                               # plane -> token
        self.frontier: deque = deque()

    def add_combo(self, rule, args: dict):
        combos = self.combos[rkey(rule)]
        if args not in combos and len(combos) < 12:
            combos.append(args)

    def merge(self, table: dict, key: str, fields: dict):
        target = table[key]
        for name, values in fields.items():
            have = target.setdefault(name, [])
            for v in values:
                if v not in have and len(have) < 12:
                    have.append(v)


def rkey(rule) -> str:
    return f"{rule.endpoint} {rule.rule} {','.join(sorted(rule.methods & set(METHODS)))}"


class Walk:
    def __init__(self, app, recorder: Recorder):
        self.app = app
        self.rec = recorder
        self.adapter = app.url_map.bind("localhost")
        self.rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
        self.prefix = app.config["TENANTPILOT_QUEUE_PREFIX"]
        self.know: dict[str, Knowledge] = defaultdict(Knowledge)
        self.real: dict[str, list[str]] = {}           # var name -> real values (global)
        self.db_combos: dict[str, list[dict]] = {}     # rule key -> coherent real view args
        self.own_rq_values: set[str] = set()
        self.owner_tenants: list[int] = []
        self.side_ips = iter(f"203.0.113.{i % 250 + 1}" for i in range(10**6))

    # -- sending ------------------------------------------------------------------

    def match(self, path: str, method: str = "GET"):
        try:
            rule, args = self.adapter.match(unquote(path), method=method, return_rule=True)
            return rule, {k: str(v) for k, v in args.items()}
        except (HTTPException, RequestRedirect):
            return None, None

    def send(self, ident: Identity, method: str, url: str, *, rule=None, body: str | None = None,
             headers: dict | None = None, client=None, check_markup: str | None = None):
        client = client or ident.client
        kwargs = {"method": method, "headers": headers or {}}
        if body is not None:
            kwargs.update(data=body.encode("utf-8"), content_type="application/x-www-form-urlencoded")
        builder = EnvironBuilder(path=url, **kwargs)
        builder.get_environ()  # a request our side cannot build is a bug of this test: raise here
        self.rec.pending_exceptions.clear()
        self.rec.current = f"{method} {short(url, 160)}{f' body={short(body, 200)!r}' if body else ''} as {ident.name}"
        escaped = None
        try:
            resp = client.open(builder, follow_redirects=False)
        except Exception as exc:  # noqa: BLE001 - an exception that escaped the app (an error handler failed)
            escaped, resp = exc, None
        self.rec.requests += 1
        self.rec.by_method[method] += 1
        if rule is None:
            rule, _ = self.match(urlsplit(url).path, method)
        if rule is not None:
            self.rec.rules_hit.add(rkey(rule))
            self.rec.rule_identity_hit.add((rkey(rule), ident.name))
        status = resp.status_code if resp is not None else 500
        self.rec.statuses[status // 100 * 100] += 1
        self.rec.by_unit[(rkey(rule) if rule is not None else url, method, ident.name)][status] += 1
        body_text = ""
        if resp is not None:
            try:
                body_text = resp.get_data().decode("utf-8", "replace")
            finally:
                resp.close()
        exceptions = list(self.rec.pending_exceptions) + ([escaped] if escaped else [])
        self.rec.pending_exceptions.clear()
        if status >= 500:
            self.rec.five_xx_responses += 1
            self.rec.add_failure(Failure("5xx", method, url, ident.name, status, excerpt(body_text),
                                         describe_exception(exceptions[-1]) if exceptions else None,
                                         headers=dict(headers or {}), request_body=body))
        if resp is not None and "html" in (resp.content_type or ""):
            marks = unescaped_markers(body_text)
            if marks:
                ours = any(m in (url + (body or "")) for m in ("%3Cscript%3Ex", "onerror"))
                kind = check_markup or ("reflected_markup" if ours else "stored_markup")
                self.rec.add_failure(Failure(kind, method, url, ident.name, status, marks[0],
                                             headers=dict(headers or {}), request_body=body))
        return resp, body_text

    # -- discovery ----------------------------------------------------------------

    def learn(self, ident: Identity, url: str, resp, body: str):
        know = self.know[ident.name]
        page_path = urlsplit(url).path
        if resp is None:
            return
        location = resp.headers.get("Location")
        if location:
            self.learn_link(ident, location)
        if "html" not in (resp.content_type or ""):
            return
        page = parse_page(body)
        for link in page.urls:
            self.learn_link(ident, link)
        for form in page.forms:
            action = form.action if form.action else url
            if not action.startswith("/") and not action.startswith("http://localhost"):
                continue
            action = action.replace("http://localhost", "", 1)
            path, pairs = split_url(action)
            plane = plane_of(path or page_path)
            if form.csrf and plane:
                know.csrf[plane] = form.csrf
            method = "POST" if form.method == "post" else "GET"
            rule, args = self.match(path or page_path, method)
            if rule is None:
                continue
            know.add_combo(rule, args)
            fields = {k: list(v) for k, v in form.fields.items()}
            if method == "POST":
                if pairs:
                    know.merge(know.params, rule.rule, {k: [v] for k, v in pairs})
                know.merge(know.forms, rule.rule, fields)
            else:
                know.merge(know.params, rule.rule, fields)

    def learn_link(self, ident: Identity, link: str):
        if link.startswith("http://localhost"):
            link = link[len("http://localhost"):]
        if not link.startswith("/") or link.startswith("//"):
            return
        link = link.split("#", 1)[0]
        path, pairs = split_url(link)
        rule, args = self.match(path, "GET")
        if rule is None:
            return
        know = self.know[ident.name]
        know.add_combo(rule, args)
        for k, v in pairs:
            know.merge(know.params, rule.rule, {k: [v]})
        know.frontier.append(link)

    def load_real_values(self):
        """Real ids and keys, straight from the database, the registry and our RQ queues."""
        from tenantpilot.extensions import db
        from tenantpilot.queue import all_queues

        app = self.app
        real: dict[str, list[str]] = defaultdict(list)
        combos: dict[str, list[dict]] = defaultdict(list)
        with app.app_context():
            tables = set(db.metadata.tables)

            def ids(sql, **kw):
                return [tuple(str(c) for c in row) for row in db.session.execute(text(sql), kw)]

            owner = self.owner_tenants
            foreign = [r[0] for r in ids("SELECT id FROM tenants WHERE NOT (id = ANY(:ids)) ORDER BY id LIMIT 3",
                                         ids=owner)]
            real["tenant_id"] = [str(t) for t in owner] + foreign
            child_tables = {"backup_set_id": "backup_sets", "report_id": "stored_reports",
                            "restore_run_id": "restore_runs", "pack_id": "review_packs", "run_id": "operation_runs"}
            for var, table in child_tables.items():
                if table not in tables:
                    continue
                mine = ids(f"SELECT id, tenant_id FROM {table} WHERE tenant_id = ANY(:ids) ORDER BY id DESC LIMIT 6",
                           ids=owner)
                other = ids(f"SELECT id, tenant_id FROM {table} WHERE NOT (tenant_id = ANY(:ids)) "
                            "ORDER BY id DESC LIMIT 2", ids=owner)
                real[var] += [r[0] for r in mine + other]
                combos[var] = [{var: r[0], "tenant_id": r[1]} for r in mine + other]
            if "operation_runs" in tables:
                real["run_id"] += [r[0] for r in ids("SELECT id FROM operation_runs ORDER BY id DESC LIMIT 6")]
            if "onboarding_drafts" in tables:
                real["draft_id"] = [r[0] for r in ids("SELECT id FROM onboarding_drafts ORDER BY id DESC LIMIT 8")]
            real["event_id"] = [r[0] for r in ids("SELECT id FROM audit_logs ORDER BY id DESC LIMIT 8")]
            registry = app.extensions["tenantpilot"].registry
            real["key"] = list(registry.runbooks) + list(registry.control_keys)
            real["instance_number"] = ["0"]
            queues = all_queues(app)
            real["queue_name"] = [q.name for q in queues]
            job_ids = []
            for q in queues:
                job_ids += q.get_job_ids()[:3]
                for reg in (q.finished_job_registry, q.failed_job_registry, q.started_job_registry):
                    job_ids += reg.get_job_ids()[:2]
            real["job_id"] = job_ids[:10] or [f"{self.prefix}-nojob"]
            real["registry_name"] = RQ_REGISTRIES
            real["per_page"] = ["10", "5"]
            real["order"] = ["asc", "dsc"]
            real["page"] = ["1", "2"]
            static = Path(app.static_folder)
            real["filename"] = [str(p.relative_to(static)) for p in sorted(static.rglob("*")) if p.is_file()][:3]
        self.own_rq_values = set(real["queue_name"]) | set(real["job_id"])
        for var in list(real):
            real[var] = list(dict.fromkeys(real[var]))
        self.real = dict(real)
        # Coherent combinations per rule (tenant + its own child row).
        self.db_combos = {}
        for rule in self.rules:
            names = [n for _, n in rule_vars(rule)]
            if not names:
                self.db_combos[rkey(rule)] = [{}]
                continue
            child = next((n for n in names if n in combos and n != "tenant_id"), None)
            rows = []
            if child and "tenant_id" in names:
                rows = [dict(c) for c in combos[child]]
            if not rows:
                rows = [{}]
            out = []
            for row in rows[:6]:
                for i in range(2):
                    args = dict(row)
                    for n in names:
                        if n not in args:
                            pool = self.real.get(n) or ["1"]
                            if rule.endpoint.startswith("rq_dashboard.static") and n == "filename":
                                pool = ["js/jobs.js", "css/main.css"]
                            args[n] = pool[i % len(pool)]
                    if args not in out:
                        out.append(args)
            self.db_combos[rkey(rule)] = out

    def seed_urls(self, per_rule: int) -> list[str]:
        urls = []
        for rule in self.rules:
            if "GET" not in rule.methods:
                continue
            for args in self.db_combos.get(rkey(rule), [{}])[:per_rule]:
                urls.append(build_url(rule, args, []))
        return urls

    def crawl(self, ident: Identity, *, per_rule: int, total: int, check_markup: str | None = None):
        know = self.know[ident.name]
        queue = deque(self.seed_urls(2))
        queue.extend(know.frontier)
        know.frontier.clear()
        seen, per = set(), Counter()
        fetched = 0
        while queue and fetched < total:
            url = queue.popleft()
            if url in seen:
                continue
            seen.add(url)
            rule, args = self.match(urlsplit(url).path, "GET")
            if rule is None or is_logout_rule(rule) or per[rkey(rule)] >= per_rule:
                continue
            per[rkey(rule)] += 1
            fetched += 1
            resp, body = self.send(ident, "GET", url, rule=rule, check_markup=check_markup)
            know.add_combo(rule, args)
            self.learn(ident, url, resp, body)
            while know.frontier:
                queue.append(know.frontier.popleft())
        return fetched

    # -- identities ---------------------------------------------------------------

    def sign_in(self, ident: Identity, client=None) -> str:
        client = client or ident.client
        resp = login(client, ident.plane, ident.email, ident.password)
        assert resp.status_code == 302, (
            f"could not sign in {ident.name} ({resp.status_code}): {excerpt(resp.get_data(as_text=True))}")
        home = f"/{ident.plane}/"
        page = client.get(home)
        body = page.get_data(as_text=True)
        if client is ident.client:
            self.learn(ident, home, page, body)
            try:
                self.know[ident.name].csrf[ident.plane] = csrf_from(body)
            except AssertionError:
                pass
        return body

    def ensure_signed_in(self, ident: Identity, after: str, expected: bool = False):
        """The walking client must stay signed in: if a request ended the session, say so
        and sign in again (the rest of the walk would silently be anonymous otherwise)."""
        if ident.plane is None:
            return
        resp = ident.client.get(f"/{ident.plane}/")
        signed_in = resp.status_code == 200
        resp.close()
        if not signed_in:
            ident.relogins += 1
            self.rec.notes.append(f"{ident.name} was signed out after {after}"
                                  f"{' (a sign-out route)' if expected else ' (UNEXPECTED)'}; signed in again")
            self.sign_in(ident)

    def side_client(self, ident: Identity, plane: str | None):
        """A throwaway client signed in as the identity, for login/logout/sign-out-
        everywhere routes (the walking client must not be signed out by the fuzz), with
        its own CSRF token for ``plane`` and its own REMOTE_ADDR (failed sign-ins never
        rate-limit the walking client)."""
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = next(self.side_ips)  # sign-in throttling is per (IP, e-mail)
        body = ""
        if ident.plane:
            try:
                body = self.sign_in(ident, client)
            except AssertionError as exc:
                self.rec.notes.append(f"side client for {ident.name} not signed in: {str(exc).splitlines()[0]}")
        if plane and plane != ident.plane:
            body = client.get(f"/{plane}/login").get_data(as_text=True)
        try:
            token = csrf_from(body) if plane else None
        except AssertionError:
            token = None
        return client, token

    # -- fuzzing ------------------------------------------------------------------

    def budget(self, ident: Identity, rule, method: str) -> int:
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            return STATIC_EXAMPLES
        if is_auth_rule(rule):
            return AUTH_ROUTE_EXAMPLES
        if ident.plane is None:
            return ANON_EXAMPLES
        plane = plane_of(rule.rule)
        if plane is None or plane == ident.plane:
            return HOME_GET_EXAMPLES if method == "GET" else HOME_POST_EXAMPLES
        return AWAY_EXAMPLES

    def path_values(self, data, rule, base: dict) -> dict[str, str]:
        """All real (the ids of one real page), one variable hostile, or all hostile."""
        names = rule_vars(rule)
        if not names:
            return {}
        mode = data.draw(st.sampled_from(["real", "one", "all", "one"]), label="path_mode")
        target = data.draw(st.sampled_from([n for _, n in names]), label="path_target") if mode == "one" else None
        values = {}
        for conv, name in names:
            if mode == "real" or (mode == "one" and name != target):
                values[name] = base[name] if name in base else (self.real.get(name) or ["1"])[0]
            else:
                values[name] = self.path_value(data, rule, name, conv, base)
        return values

    def path_value(self, data, rule, name: str, conv: str, base: dict) -> str:
        real = [base[name]] if name in base else []
        others = [v for v in self.real.get(name, []) if v not in real][:8]
        options = [st.sampled_from(real or others or ["1"])]
        if others:
            options.append(st.sampled_from(others))
        options.append(hostile())
        if conv in ("int", "default"):
            options.append(st.sampled_from(BIG_INTS + NON_ASCII_DIGITS + [Raw("%00"), "1\x00", "-1", "0"]))
        return data.draw(st.one_of(*options), label=f"path:{name}")

    def draw_fields(self, data, fields: dict[str, list[str]], *, post: bool) -> list[tuple[str, str]]:
        names = sorted(fields)
        pairs: list[tuple[str, str]] = []
        modes = ["valid", "one", "many", "one"] if post else ["omit", "many", "one", "valid"]
        mode = data.draw(st.sampled_from(modes), label="mode")
        target = data.draw(st.sampled_from(names), label="target") if names and mode == "one" else None
        for name in names:
            valid = [v for v in fields[name]]
            if not any(v.strip() for v in valid):
                valid += [VALID_TEXT, "1"]
            if any(w in name.lower() for w in ("guid", "external_id", "client_id")):
                valid.append(FIXED_GUID)
            if mode == "valid" or (mode == "one" and name != target):
                pairs.append((name, data.draw(st.sampled_from(valid), label=name)))
                continue
            if mode == "omit":
                continue
            action = "hostile" if mode == "one" else data.draw(
                st.sampled_from(["hostile", "valid", "omit", "dup", "markup"]), label=f"act:{name}")
            if action == "valid":
                pairs.append((name, data.draw(st.sampled_from(valid), label=name)))
            elif action == "hostile":
                pairs.append((name, data.draw(hostile(), label=name)))
            elif action == "markup":
                pairs.append((name, data.draw(st.sampled_from(MARKUP_VALUES), label=name)))
            elif action == "dup":
                pairs += [(name, data.draw(value_strategy(valid), label=name)) for _ in range(2)]
        extra = data.draw(st.lists(st.tuples(hostile_name(), hostile()), max_size=2 if mode != "valid" else 0),
                          label="extra")
        return pairs + extra

    def draw_request(self, data, ident: Identity, rule, method: str, csrf_token: str | None = None):
        know = self.know[ident.name]
        combos = know.combos.get(rkey(rule)) or self.db_combos.get(rkey(rule)) or [{}]
        if method != "GET" and not know.combos.get(rkey(rule)):
            # A POST-only rule nobody linked to: borrow the real ids of the GET rule at
            # the same address, if any.
            names = {n for _, n in rule_vars(rule)}
            if all(names <= set(c) for c in combos):
                get_rule, _ = self.match(build_url(rule, combos[0], []), "GET")
                if get_rule is not None:
                    combos = know.combos.get(rkey(get_rule)) or combos
        base = data.draw(st.sampled_from(combos), label="base") if combos else {}
        values = self.path_values(data, rule, base)
        params = know.params.get(rule.rule, {})
        pairs = self.draw_fields(data, params, post=False) if method == "GET" or params else []
        body = None
        if method != "GET":
            fields = self.draw_fields(data, know.forms.get(rule.rule, {}), post=True)
            plane = plane_of(rule.rule)
            token = csrf_token or know.csrf.get(plane or "")
            # The same choices whatever we know (hypothesis needs generation independent of
            # outside state); "valid" without a known token sends none.
            csrf = data.draw(st.sampled_from(["valid", "valid", "omit", "hostile"]), label="csrf")
            if csrf == "valid" and token:
                fields.insert(0, ("csrf_token", token))
            elif csrf == "hostile":
                fields.insert(0, ("csrf_token", data.draw(hostile(), label="csrf_value")))
            body = build_query(fields)
        headers = dict(data.draw(st.sampled_from([{}, {"HX-Request": "true"}, {"Accept": "application/json"}]),
                                 label="headers"))
        if rule.endpoint in RQ_WRITE_ENDPOINTS and data.draw(st.booleans(), label="xhr"):
            # rq-dashboard writes act on Redis keys: only ever on our own (prefixed) queues
            # and jobs. Any other value goes without the header, so the guard refuses it
            # before Redis is touched.
            rq_vals = [values[n] for n in ("queue_name", "job_id") if n in values]
            if all(v in self.own_rq_values or str(v).startswith(self.prefix) for v in rq_vals):
                headers["X-Requested-With"] = "XMLHttpRequest"
        return build_url(rule, values, pairs), body, headers

    def fuzz_unit(self, ident: Identity, rule, method: str, examples: int):
        side = is_auth_rule(rule) and (method != "GET" or is_logout_rule(rule))

        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                  verbosity=Verbosity.quiet, report_multiple_bugs=False)
        @given(st.data())
        def example(data):
            client, token = self.side_client(ident, plane_of(rule.rule)) if side else (ident.client, None)
            url, body, headers = self.draw_request(data, ident, rule, method, csrf_token=token)
            self.send(ident, method, url, rule=rule, body=body, headers=headers, client=client)

        seed(stable_seed(ident.name, rkey(rule), method))(example)()

    def fuzz(self, ident: Identity):
        for rule in self.rules:
            methods = [m for m in METHODS if m in rule.methods]
            for method in methods:
                self.fuzz_unit(ident, rule, method, self.budget(ident, rule, method))
            if ident.plane and plane_of(rule.rule) == ident.plane:
                # After sign-out routes too: "sign out everywhere" through the side client
                # also ends the walking client's session.
                self.ensure_signed_in(ident, f"{'/'.join(methods)} {rule.rule}", expected=is_logout_rule(rule))


# --- seeding -------------------------------------------------------------------------


def drain_queues(app):
    from tenantpilot.queue import make_worker

    make_worker(app, thread=True).work(burst=True, logging_level="WARNING")


def counts(app) -> dict[str, int]:
    from tenantpilot.extensions import db

    wanted = ["operation_runs", "audit_logs", "findings", "backup_sets", "stored_reports", "review_packs",
              "restore_runs", "onboarding_drafts", "tenants", "workspaces"]
    with app.app_context():
        have = set(db.metadata.tables)
        return {t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in wanted if t in have}


def seed_world(app, walk: Walk, owner: Identity, operator: Identity, tenants) -> None:
    """Data every kind of page can point at, made through the app's own surfaces."""
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.models import PlatformUser
    from tenantpilot.runs import Scope

    def post(ident, url, data):
        token = walk.know[ident.name].csrf.get(plane_of(url))
        return walk.send(ident, "POST", url, body=build_query([("csrf_token", token), *data]))

    def operator_actor():
        return Actor.platform(db.session.scalars(select(PlatformUser).where(PlatformUser.email == operator.email)).one())

    with app.app_context():
        result = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=operator_actor(),
                            source="system_ui")
        assert result.ok, result
    runner = app.test_cli_runner()
    for args in (["controls", "pause", "--key", "restore.execute", "--workspace", str(tenants[0].workspace_id),
                  "--reason", "Fuzz seed: planned maintenance window"],
                 ["controls", "resume", "--key", "restore.execute", "--workspace", str(tenants[0].workspace_id)]):
        runner.invoke(args=args)
    try:
        from tenantpilot_reports import service as reports_service

        report_types = list(reports_service.REPORT_TYPES)
    except ImportError:
        report_types = []
    for t in tenants[:2]:
        base = f"/admin/t/{t.id}"
        post(owner, f"{base}/backups/capture", [])
        for report_type in report_types:
            post(owner, f"{base}/reports/generate", [("report_type", report_type)])
        post(owner, f"{base}/review-packs", [("include_operations", "y")])
        post(owner, f"{base}/support-diagnostics", [])
    for i in range(2):
        post(owner, "/admin/onboarding/", [("display_name", f"Fuzz Onboarding {i}"),
                                           ("external_id", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"fuzz-{i}")))])
    drain_queues(app)
    from tenantpilot.extensions import db as _db

    with app.app_context():
        draft = _db.session.execute(text("SELECT id FROM onboarding_drafts ORDER BY id DESC LIMIT 1")).scalar()
        backups = {t.id: _db.session.execute(text("SELECT id FROM backup_sets WHERE tenant_id = :t ORDER BY id DESC"),
                                             {"t": t.id}).scalar() for t in tenants[:2]}
    if draft:
        post(owner, f"/admin/onboarding/{draft}/connect", [("provider", "simulated")])
        post(owner, f"/admin/onboarding/{draft}/verify", [])
    t = tenants[0]
    if backups.get(t.id):
        common = [("backup_set_id", str(backups[t.id])), ("scope", "all"), ("acknowledge", "y"),
                  ("tenant_name", t.name)]
        post(owner, f"/admin/t/{t.id}/restore-runs", common + [("dry_run", "y")])
        post(owner, f"/admin/t/{t.id}/restore-runs", common)
    drain_queues(app)
    with app.app_context():  # left queued on purpose: the RQ dashboard has jobs to show
        seam.start("ops.pipeline_canary", scope=Scope("single_tenant", tenant_id=tenants[1].id),
                   actor=operator_actor(), source="system_ui")


# --- the test ------------------------------------------------------------------------


def format_summary(rec: Recorder, walk: Walk, seconds: float, seeded: dict, phases: dict,
                   phases_counts: dict) -> str:
    total = len(walk.rules)
    covered_all = sum(1 for r in walk.rules if rkey(r) in rec.rules_hit)
    per_identity = Counter(name for _, name in rec.rule_identity_hit)
    not_covered = [r.rule for r in walk.rules if rkey(r) not in rec.rules_hit]
    answered = {key for (key, _, _), got in rec.by_unit.items() if any(code < 400 for code in got)}
    answered &= {rkey(r) for r in walk.rules}
    lines = [
        "fuzz_routes summary",
        f"  requests sent:        {rec.requests} ({', '.join(f'{m} {n}' for m, n in rec.by_method.most_common())})",
        f"  routes (rules):       {covered_all}/{total} covered"
        + (f"; not covered: {not_covered}" if not_covered else ""),
        f"  per identity:         {', '.join(f'{k} {v}/{total}' for k, v in sorted(per_identity.items()))}",
        f"  rules answered <400:  {len(answered)}/{total} (at least once, any identity: the view was reached)",
        f"  status classes:       {dict(sorted(rec.statuses.items()))}",
        f"  5xx responses:        {rec.five_xx_responses} ({len(rec.five_xx)} distinct requests, "
        f"{len({f.cause_key() for f in rec.five_xx})} distinct causes)",
        f"  reflected markup:     {sum(f.kind == 'reflected_markup' for f in rec.failures)}",
        f"  stored markup:        {sum(f.kind == 'stored_markup' for f in rec.failures)}",
        f"  crawl GETs:           discovery {phases_counts.get('discover', 0)}, recheck {phases_counts.get('recheck', 0)}",
        f"  run time:             {seconds:.1f} s ({', '.join(f'{k} {v:.1f}s' for k, v in phases.items())})",
        f"  seeded rows:          {seeded}",
    ]
    if rec.safety_net:
        lines.append(f"  DataError safety net: {len(rec.safety_net)} request(s) answered 400 only by the "
                     f"app's DataError handler (value reached the database), e.g. {rec.safety_net[:3]}")
    if rec.notes:
        lines.append(f"  notes:                {len(rec.notes)}: {rec.notes[:5]}")
    return "\n".join(lines)


def format_coverage(rec: Recorder, walk: Walk) -> str:
    """Per rule and method: the statuses each identity got, and what discovery found."""
    out = []
    for rule in walk.rules:
        for method in [m for m in METHODS if m in rule.methods]:
            cells = []
            for name in ("anonymous", "owner", "operator"):
                got = rec.by_unit.get((rkey(rule), method, name), {})
                cells.append(f"{name}: " + (" ".join(f"{k}x{v}" for k, v in sorted(got.items())) or "-"))
            out.append(f"{method:<5} {rule.rule}  [{'; '.join(cells)}]")
            for name in ("owner", "operator"):
                know = walk.know[name]
                fields = know.forms.get(rule.rule, {}) if method != "GET" else know.params.get(rule.rule, {})
                if fields:
                    out.append(f"        {name} {'form' if method != 'GET' else 'query'}: {sorted(fields)}")
    return "\n".join(out)


def format_failures(rec: Recorder, limit_per_class: int = 3) -> str:
    out = []
    for cause, items in rec.grouped().items():
        out.append(f"- {cause}: {len(items)} request(s)")
        ex = items[0].exception
        if ex:
            out.append(f"    {ex['type']}: {ex['message'][:240]}")
            out.append(f"    raised at {ex['innermost']}; cause chain: {' <- '.join(ex['chain'][1:3]) or '-'}")
        for f in items[:limit_per_class]:
            out.append(f"  {f.request(160)} -> {f.status}: {f.body[:120]!r}")
    return "\n".join(out)


@contextmanager
def app_log_to(path: Path):
    """The walk makes thousands of requests: the app's log (one JSON line each, and the
    traceback of every 500) goes to a file instead of flooding the test output."""
    from tenantpilot.logs import JsonFormatter

    logger = logging.getLogger("tenantpilot")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
        handler.close()


class _SafetyNet(logging.Handler):
    """Counts the requests the app's DataError handler answered with a 400 (the value got
    as far as the database): not a 5xx, but worth knowing; listed in the summary."""

    def __init__(self, rec: Recorder):
        super().__init__(logging.WARNING)
        self.rec = rec

    def emit(self, record):
        if record.getMessage() == "request value refused by the database":
            self.rec.safety_net.append(f"{self.rec.current} ({getattr(record, 'error', '?')})")


class _TerminalSummary:
    def __init__(self):
        self.text = ""

    def pytest_terminal_summary(self, terminalreporter):
        if self.text:
            terminalreporter.write_sep("-", "route fuzz figures")
            terminalreporter.write_line(self.text)


def test_fuzz_every_route(make_app, request, record_property):
    with app_log_to(APP_LOG):
        fuzz_every_route(make_app, request, record_property)


def fuzz_every_route(make_app, request, record_property):
    started = time.perf_counter()
    phases: dict[str, float] = {}
    reporter = _TerminalSummary()
    request.config.pluginmanager.register(reporter, f"fuzz-routes-summary-{id(reporter)}")

    app = make_app(**APP_CONFIG)
    rec = Recorder()
    got_request_exception.connect(rec.app_exception, app)
    safety_net = _SafetyNet(rec)
    logging.getLogger("tenantpilot.http").addHandler(safety_net)
    request.addfinalizer(lambda: logging.getLogger("tenantpilot.http").removeHandler(safety_net))
    walk = Walk(app, rec)
    factory = Factory(app)

    # Identities and their data: the owner's own workspaces and tenants exist before the
    # demo seed, so its plugin hooks (provider connection, findings, backups, reports)
    # cover them too.
    ws = factory.workspace("Fuzz Workspace")
    ws2 = factory.workspace("Fuzz Second Workspace")
    tenants = [factory.tenant(ws, name="Fuzz Tenant One", status="active"),
               factory.tenant(ws, name="Fuzz Tenant Two", status="active"),
               factory.tenant(ws2, name="Fuzz Tenant Three", status="active")]
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    owner_row = factory.user(memberships=[(ws, "owner"), (ws2, "owner")])
    operator_row = factory.platform_user()
    anonymous = Identity("anonymous", None, client=app.test_client())
    owner = Identity("owner", "admin", owner_row.email, "user-pass-123", app.test_client())
    operator = Identity("operator", "system", operator_row.email, "platform-pass-123", app.test_client())
    identities = [anonymous, owner, operator]
    for ident in (owner, operator):
        walk.sign_in(ident)
    walk.owner_tenants = [t.id for t in tenants]
    seed_world(app, walk, owner, operator, tenants)
    seeded = counts(app)
    walk.load_real_values()
    phases["seed"] = time.perf_counter() - started

    t = time.perf_counter()
    crawled = Counter()
    for ident in identities:
        crawled["discover"] += walk.crawl(ident, per_rule=CRAWL_PER_RULE, total=CRAWL_TOTAL)
    phases["discover"] = time.perf_counter() - t

    t = time.perf_counter()
    for ident in identities:
        walk.fuzz(ident)
    phases["fuzz"] = time.perf_counter() - t

    # Stored markup: every page again, as each identity, with the ids that exist now
    # (drafts, runs and audit events the fuzz created included).
    t = time.perf_counter()
    walk.load_real_values()
    for ident in (owner, operator):
        walk.ensure_signed_in(ident, "the fuzz")
    for ident in identities:
        crawled["recheck"] += walk.crawl(ident, per_rule=RECHECK_PER_RULE, total=CRAWL_TOTAL * 2,
                                         check_markup="stored_markup")
    phases["recheck"] = time.perf_counter() - t

    seconds = time.perf_counter() - started
    summary = format_summary(rec, walk, seconds, seeded, phases, crawled)
    failures = format_failures(rec)
    SUMMARY.update(requests=rec.requests, rules_covered=len(rec.rules_hit), rules_total=len(walk.rules),
                   five_xx=rec.five_xx_responses, five_xx_distinct=len(rec.five_xx), failures=len(rec.failures), seconds=round(seconds, 1))
    for k, v in SUMMARY.items():
        record_property(k, v)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(summary + "\n\nFailures by cause:\n" + (failures or "none") + "\n\nAll failures:\n"
                        + "\n".join(f.line() for f in rec.failures)
                        + "\n\nStatuses per rule, method and identity (and the fields discovery found):\n"
                        + format_coverage(rec, walk) + "\n", encoding="utf-8")
    reporter.text = summary + (f"\n  details:              {ARTIFACT.relative_to(PROJECT_ROOT)} "
                               f"(app log: {APP_LOG.relative_to(PROJECT_ROOT)})")
    print("\n" + summary)

    if rec.failures:
        pytest.fail(
            f"{rec.five_xx_responses} response(s) >= 500 ({len(rec.five_xx)} distinct requests) and "
            f"{len(rec.failures) - len(rec.five_xx)} page(s) with unescaped markup of ours "
            f"({len(rec.grouped())} distinct causes):\n{failures}\n\n{summary}\n"
            f"(full list in {ARTIFACT.relative_to(PROJECT_ROOT)}, app log in {APP_LOG.relative_to(PROJECT_ROOT)})",
            pytrace=False)
