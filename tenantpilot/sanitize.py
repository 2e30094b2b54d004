"""Scrubbing of anything operator-visible that may have come from an exception or a
provider: failure messages, audit metadata."""
from __future__ import annotations

import re

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Long opaque strings (bearer tokens, keys, JWTs) are replaced, not shown.
TOKEN_RE = re.compile(r"[A-Za-z0-9_\-\.=+/]{32,}")
SECRET_KEY_RE = re.compile(r"(secret|password|token|authorization|cookie|credential|api[_-]?key)", re.I)
# Keys that name a secret-bearing thing without holding its secret: an API token's id,
# name and prefix (tokens.token_label). Their values are still sanitized like any other.
LABEL_KEYS = frozenset({"api_token"})
REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


def safe_message(text: str | None, limit: int = 200) -> str:
    text = " ".join(str(text or "").split())
    text = EMAIL_RE.sub("[email]", text)
    text = TOKEN_RE.sub("[redacted]", text)
    return text[:limit]


def safe_reason(code: str | None) -> str:
    return code if code and REASON_RE.match(code) else "unexpected_error"


def safe_metadata(value, depth: int = 0):
    """Redact secret-looking keys, e-mails and tokens; bound size and depth."""
    if depth > 4:
        return "[truncated]"
    if isinstance(value, dict):
        return {
            str(k)[:60]: ("[redacted]" if SECRET_KEY_RE.search(str(k)) and not (k in LABEL_KEYS and isinstance(v, dict))
                          else safe_metadata(v, depth + 1))
            for k, v in list(value.items())[:50]
        }
    if isinstance(value, (list, tuple)):
        return [safe_metadata(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, str):
        return safe_message(value, 500)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return safe_message(str(value), 200)
