"""Scrubbing of anything operator-visible that may have come from an exception or a
provider: failure messages, audit metadata."""
from __future__ import annotations

import re

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Long opaque strings (bearer tokens, keys, JWTs) are replaced, not shown.
TOKEN_RE = re.compile(r"[A-Za-z0-9_\-\.=+/]{32,}")
SECRET_KEY_RE = re.compile(r"(secret|password|token|authorization|cookie|credential|api[_-]?key)", re.I)
REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
# How audit rows name an API token (``tokens.token_label``): id, name and the public prefix,
# never the secret. Kept under its keys, which would otherwise read as secret-looking.
TOKEN_LABEL_KEYS = ("api_token",)
TOKEN_LABEL_FIELDS = frozenset({"id", "name", "prefix"})


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
            str(k)[:60]: ("[redacted]" if SECRET_KEY_RE.search(str(k)) and not _is_token_label(k, v)
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


def _is_token_label(key, value) -> bool:
    return key in TOKEN_LABEL_KEYS and isinstance(value, dict) and bool(value) and set(value) <= TOKEN_LABEL_FIELDS
