"""Machinery for tests/test_fuzz_routes.py: hostile values (hypothesis strategies), page
discovery (links, GET forms, POST forms with their CSRF token), URL and body building, and
the recorder that collects every request's outcome and the app's own exception for each
5xx (Flask's ``got_request_exception`` signal)."""
from __future__ import annotations

import re
import traceback
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from hypothesis import strategies as st

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# --- hostile values ------------------------------------------------------------------


class Raw(str):
    """A value that is already percent-encoded: inserted into the URL / body verbatim, so
    the app decodes it (to NUL, invalid UTF-8, a slash, an RTL override, ...)."""


SCRIPT_MARKUP = "<script>x</script>"
IMG_MARKUP = '"><img src=x onerror=alert(1)>'

BIG_INTS = ["2147483647", "2147483648", "-2147483648", "-2147483649", "4294967296", "4294967297",
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
            "18446744073709551616", str(10**30), "-" + str(10**30), "9" * 40, "0" * 30 + "1"]
ODD_NUMBERS = ["0", "-0", "-1", "00", "007", "+5", " 7 ", "7 ", "1.5", "1e3", "1e309", "0x1f", "NaN", "inf",
               "-inf", "1_000", "٠", "3\u00a0"]
NON_ASCII_DIGITS = ["١٢٣", "²", "𝟗", "٣", "¹²³", "१२३", "１２３", "߁", "Ⅻ", "〇", "𝟘𝟙", "৩", "๓"]
CONTROL = ["\x00", "a\x00b", "1\x00", "\x00" * 8, "\x01\x02\x03", "\x1b[2J", "\x7f", "\x85", "\x9b",
           "\u2028", "\r\nX-Injected: 1", "\t", "\x0b\x0c", "\x08"]
LONG = ["A" * 10_000, "9" * 10_000, "é" * 5_000, SCRIPT_MARKUP * 400, "a/" * 3_000, "%" * 2_000]
MARKUP = [SCRIPT_MARKUP, IMG_MARKUP, "'>" + SCRIPT_MARKUP, "</textarea>" + SCRIPT_MARKUP,
          "</title>" + IMG_MARKUP, "javascript:alert(1)", "{{7*7}}", "{% raw %}", "${7*7}", "<!--", "]]>",
          "x" + IMG_MARKUP + "y"]
SQLISH = ["' OR '1'='1", "1 OR 1=1", "1; DROP TABLE tenants; --", "1' UNION SELECT NULL--", "%' --", "\\",
          "1)) OR ((1=1", "'; SELECT 1; --", "\"", "'", "`", "*", "%", "_", "%_%"]
BLANK = ["", " ", "   ", "\n", "\u00a0", "\u3000", "\u200b"]
UNICODE = ["\u202ecba", "\u200fabc", "\ufeff1", "😀", "👩\u200d👩\u200d👧\u200d👦", "Ω≈ç√", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ﷺ", "İ",
           "ß", "e\u0301", "中文", "ǅ"]
PATHISH = ["../../etc/passwd", "..", ".", "/", "//evil.test", "https://evil.test/", "\\\\evil.test", "a/b",
           "con", "nul.json", "index.html"]
PERCENT = [Raw("%00"), Raw("1%00"), Raw("%ff"), Raw("%ff%fe"), Raw("%c0%af"), Raw("%ed%a0%80"),
           Raw("%2e%2e%2f%2e%2e%2f"), Raw("%252e"), Raw("%E2%80%AE"), Raw("%0d%0aSet-Cookie:%20x=1"),
           Raw("%"), Raw("%zz"), Raw("%2F"), Raw("%u0031"), Raw("%D9%A1%D9%A2"), Raw("%C2%B2")]

HOSTILE_LITERALS = (BIG_INTS + ODD_NUMBERS + NON_ASCII_DIGITS + CONTROL + LONG + MARKUP + SQLISH + BLANK
                    + UNICODE + PATHISH + PERCENT)
MARKUP_VALUES = [SCRIPT_MARKUP, IMG_MARKUP, "'>" + SCRIPT_MARKUP, "</textarea>" + SCRIPT_MARKUP,
                 "Fuzz reason " + IMG_MARKUP + " " + SCRIPT_MARKUP]

# Any unicode text but lone surrogates (not encodable, so not sendable in a URL or a body).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def hostile() -> st.SearchStrategy[str]:
    """One hostile value: literals of every class above, big and negative integers, arbitrary
    unicode, and mixes of a valid-looking prefix with a hostile tail."""
    return st.one_of(
        st.sampled_from(HOSTILE_LITERALS),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.sampled_from(BIG_INTS + NON_ASCII_DIGITS + CONTROL[:4]),
        _TEXT,
        st.tuples(st.sampled_from(["1", "a", "ops", ""]), st.sampled_from(CONTROL + NON_ASCII_DIGITS + MARKUP))
        .map("".join),
        st.sampled_from(MARKUP_VALUES),
    )


def hostile_name() -> st.SearchStrategy[str]:
    """A parameter name nobody expects."""
    return st.one_of(st.sampled_from(["id", "page", "cursor", "limit", "q", "sort", "next", "token", "x[]",
                                      "a\x00", "<script>x</script>", "", "é", "__class__", "csrf_token"]), _TEXT)


def value_strategy(valid: list[str]) -> st.SearchStrategy[str]:
    """Valid values first (the simplest example is a plain valid request), then hostile."""
    if valid:
        return st.one_of(st.sampled_from(valid), hostile())
    return hostile()


# --- page discovery ------------------------------------------------------------------


@dataclass
class Form:
    method: str
    action: str | None
    fields: dict[str, list[str]] = field(default_factory=dict)
    csrf: str | None = None

    def add(self, name: str | None, value: str | None):
        if not name:
            return
        if name == "csrf_token":
            self.csrf = value or self.csrf
            return
        values = self.fields.setdefault(name, [])
        value = value if value is not None else ""
        if value not in values and len(values) < 12:
            values.append(value)


class PageParser(HTMLParser):
    """Collects the URLs a page points at (a/link/script/img/form/hx-*) and its forms with
    their fields (input/select/option/textarea/button names and values)."""

    URL_ATTRS = ("href", "src", "action", "hx-get", "hx-post", "data-url", "data-href")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._select_first = True
        self._option_value: str | None = None
        self._option_text: list[str] | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        for key in self.URL_ATTRS:
            if a.get(key):
                self.urls.append(a[key])
        if tag == "form":
            self._form = Form(method=(a.get("method") or "get").lower(), action=a.get("action"))
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            # Fields outside a <form> that name one by id still post with it; rare here.
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                form.add(a.get("name"), a.get("value") or "on")
            elif kind not in ("submit", "image", "reset", "file"):
                form.add(a.get("name"), a.get("value", ""))
            elif kind == "submit" and a.get("name"):
                form.add(a.get("name"), a.get("value", ""))
        elif tag == "button" and a.get("name"):
            form.add(a.get("name"), a.get("value", ""))
        elif tag == "select":
            self._select = a.get("name")
            if self._select:
                form.fields.setdefault(self._select, [])
        elif tag == "option" and self._select:
            self._option_value = a.get("value")
            self._option_text = []
        elif tag == "textarea":
            self._textarea = a.get("name")
            if self._textarea:
                form.fields.setdefault(self._textarea, [])

    def handle_data(self, data):
        if self._option_text is not None:
            self._option_text.append(data)
        if self._textarea and self._form is not None and data.strip():
            self._form.add(self._textarea, data)

    def handle_endtag(self, tag):
        if tag == "option" and self._select and self._form is not None and self._option_text is not None:
            value = self._option_value if self._option_value is not None else "".join(self._option_text).strip()
            self._form.add(self._select, value)
            self._option_text = None
            self._option_value = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None


def parse_page(html: str) -> PageParser:
    p = PageParser()
    try:
        p.feed(html)
        p.close()
    except Exception:  # noqa: BLE001 - a page the stdlib parser chokes on still gave what it parsed
        pass
    return p


# --- URL and body building -----------------------------------------------------------

VAR_RE = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def rule_vars(rule) -> list[tuple[str, str]]:
    """[(converter, name)] of a werkzeug rule, in order."""
    return [(m.group(1) or "default", m.group(2)) for m in VAR_RE.finditer(rule.rule)]


def enc(value: str, *, safe: str = "") -> str:
    if isinstance(value, Raw):
        return str(value)
    return quote(value, safe=safe)


def build_path(rule, values: dict[str, str]) -> str:
    conv = dict((name, c) for c, name in rule_vars(rule))

    def sub(m):
        name = m.group(2)
        return enc(str(values[name]), safe="/" if conv.get(name) == "path" else "")

    return VAR_RE.sub(sub, rule.rule)


def build_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{enc(k)}={enc(v)}" if v is not None else enc(k) for k, v in pairs)


def build_url(rule, values: dict[str, str], pairs: list[tuple[str, str]]) -> str:
    path = build_path(rule, values)
    query = build_query(pairs)
    return f"{path}?{query}" if pairs else path


def split_url(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


# --- outcome recording ---------------------------------------------------------------

TAG_RE = re.compile(r"<[^>]+>")
WS_RE = re.compile(r"\s+")
STORED_SCRIPT_RE = re.compile(r"<script>x", re.I)
STORED_ONERROR_RE = re.compile(r"<[a-zA-Z][^<>]*\sonerror\s*=", re.I)


def excerpt(body: str, n: int = 160) -> str:
    if "<main" in body:  # the page's own content, not the navigation
        body = body[body.index("<main"):]
    text = WS_RE.sub(" ", TAG_RE.sub(" ", body)).strip()
    m = re.search(r"(Something went wrong|Internal Server Error|Traceback|Error)", text)
    start = max(0, m.start() - 20) if m else 0
    return text[start:start + n]


class _MarkupFinder(HTMLParser):
    """Real elements made of our payloads: a ``<script>`` whose text is ``x`` or any tag
    with an ``onerror`` attribute (the app's pages carry no inline handlers: strict CSP)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        if any(k == "onerror" for k, _ in attrs):
            self.found.append(self.get_starttag_text() or tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip() == "x":
            self.found.append(f"<script>{data}</script>")


def unescaped_markers(body: str) -> list[str]:
    """Our markup, unescaped: a raw ``<script>x`` or a real tag carrying ``onerror=``
    (``&lt;img src=x onerror=…&gt;`` is escaped text, and an escaped value inside an
    attribute is fine too)."""
    if not (STORED_SCRIPT_RE.search(body) or "onerror" in body.lower()):
        return []
    finder = _MarkupFinder()
    try:
        finder.feed(body)
        finder.close()
    except Exception:  # noqa: BLE001 - fall back to the raw patterns below
        pass
    found = [f[:160] for f in finder.found]
    if not found:
        m = STORED_SCRIPT_RE.search(body)
        if m:
            found.append(body[max(0, m.start() - 40):m.end() + 40].replace("\n", " "))
    return found


def short(url: str, n: int = 220) -> str:
    return url if len(url) <= n else f"{url[:n]}…(+{len(url) - n} chars)"


def _short_path(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if filename.startswith(str(PROJECT_ROOT)):
        return str(Path(filename).relative_to(PROJECT_ROOT))
    return filename


def describe_exception(exc: BaseException) -> dict:
    """Type, message and where in the project it was raised (innermost project frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    chain = []
    cause = exc
    while cause is not None and len(chain) < 4:
        chain.append(f"{type(cause).__module__}.{type(cause).__qualname__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}")
        cause = cause.__cause__ or cause.__context__
    project = [f for f in frames if f.filename.startswith(str(PROJECT_ROOT)) and "site-packages" not in f.filename]
    where = project[-1] if project else (frames[-1] if frames else None)
    loc = f"{_short_path(where.filename)}:{where.lineno} in {where.name}" if where else "?"
    innermost = f"{_short_path(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": (str(exc).splitlines() or [""])[0][:300],
            "where": loc, "innermost": innermost, "chain": chain}


NORMALIZE_RE = re.compile(r"\d+")


@dataclass
class Failure:
    kind: str  # "5xx" | "reflected_markup" | "stored_markup"
    method: str
    url: str
    identity: str
    status: int
    body: str
    exception: dict | None = None
    headers: dict = field(default_factory=dict)
    request_body: str | None = None

    def request(self, n: int = 220) -> str:
        """The request, enough to replay it: method, URL, extra headers, form body."""
        extra = f" headers={self.headers}" if self.headers else ""
        form = f" body={short(self.request_body, 160)!r}" if self.request_body else ""
        return f"{self.method} {short(self.url, n)}{extra}{form} as {self.identity}"

    def line(self) -> str:
        exc = ""
        if self.exception:
            exc = f"\n      exception: {self.exception['type']}: {self.exception['message'][:200]} @ {self.exception['where']}"
        return f"  [{self.kind}] {self.request()} -> {self.status}: {self.body[:200]!r}{exc}"

    def cause_key(self) -> str:
        if self.kind != "5xx":
            return f"{self.kind}"
        if not self.exception:
            return f"HTTP {self.status} without an exception"
        message = NORMALIZE_RE.sub("N", self.exception["message"])[:90]
        return f"{self.exception['type']}: {message} @ {self.exception['where']}"


class Recorder:
    def __init__(self):
        self.requests = 0
        self.by_method: Counter = Counter()
        self.rules_hit: set = set()
        self.rule_identity_hit: set = set()
        self.statuses: Counter = Counter()
        self.by_unit: dict = defaultdict(Counter)  # (identity, method, rule) -> status counts
        self.failures: list[Failure] = []
        self.five_xx_responses = 0
        self._seen_failures: set = set()
        self.pending_exceptions: list[BaseException] = []
        self.notes: list[str] = []
        self.safety_net: list[str] = []  # requests the app's DataError handler turned into a 400
        self.current = ""  # the request in flight (for log records)

    def app_exception(self, sender, exception, **extra):  # got_request_exception receiver
        self.pending_exceptions.append(exception)

    def add_failure(self, failure: Failure):
        key = (failure.kind, failure.method, failure.url, failure.identity)
        if key in self._seen_failures:
            return
        self._seen_failures.add(key)
        self.failures.append(failure)

    @property
    def five_xx(self) -> list[Failure]:
        return [f for f in self.failures if f.kind == "5xx"]

    def grouped(self) -> dict[str, list[Failure]]:
        groups: dict[str, list[Failure]] = defaultdict(list)
        for f in self.failures:
            groups[f.cause_key()].append(f)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def stable_seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())
