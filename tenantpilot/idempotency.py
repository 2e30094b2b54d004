"""One idempotency token per rendered confirm form (start, pause, resume, restore).

A confirm form carries a fresh random token (``{{ idempotency_field() }}``). The view
claims it (``claim``) in the same transaction as the write it confirms: the first submit
inserts the key and goes on; a double click, a refresh of the POST or a replayed request
finds the key taken (``AlreadySubmitted``) and is answered with where the first one led,
writing nothing. If the first submit's transaction rolls back, the key goes with it, so
a failed action can be confirmed again. Keys are per person and plane; the scheduler
prunes them after a day.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import request
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import IdempotencyKey
from .planes import current_plane
from .timeutil import utcnow

FIELD = "idempotency_token"
KEEP = timedelta(days=1)


class AlreadySubmitted(Exception):
    """This form was submitted before; ``result_url`` is where that submit led (or None)."""

    def __init__(self, result_url: str | None):
        super().__init__("already submitted")
        self.result_url = result_url


def field() -> Markup:
    """The hidden input of a confirm form (a Jinja global)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, secrets.token_urlsafe(24))


def _key(raw: str) -> str:
    who = f"{current_plane()}:{current_user.get_id() if current_user.is_authenticated else '-'}"
    return hashlib.sha256(f"{who}:{raw}".encode()).hexdigest()


def claim(scope: str) -> str | None:
    """Claim this submit's token (flushed into the caller's transaction): the form's
    hidden field, or an API request's ``Idempotency-Key`` header. Returns the key, or None
    when the request carries neither (CLI, older forms): no protection then. Raises
    AlreadySubmitted when the token was used before."""
    raw = (request.form.get(FIELD) or request.headers.get("Idempotency-Key") or "").strip()
    if not raw or len(raw) > 100:
        return None
    key = _key(raw)
    try:
        with db.session.begin_nested():
            db.session.add(IdempotencyKey(key=key, scope=scope[:80], created_at=utcnow()))
    except IntegrityError:
        existing = db.session.get(IdempotencyKey, key)
        raise AlreadySubmitted(existing.result_url if existing else None) from None
    return key


def remember(key: str | None, result_url: str | None) -> None:
    """Record where the first submit led, for the later ones."""
    if key and result_url:
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == key).values(result_url=result_url[:300]))
        db.session.commit()


def prune() -> int:
    count = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP)).rowcount
    db.session.commit()
    return count
