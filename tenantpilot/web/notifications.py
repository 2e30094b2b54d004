"""In-app notifications, shared by both planes: the bell in the top bar (unread count,
refreshed by htmx every few seconds), the notifications page (newest first, keyset pages),
opening one (marks it read and goes to its run) and "mark all read".

A person only ever sees their own: tenant users by ``user_id`` on /admin, platform users
by ``platform_user_id`` on /system. Someone else's notification id is a 404.
"""
from __future__ import annotations

from flask import abort, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select, update

from ..extensions import db
from ..models import Notification, OperationRun
from ..timeutil import utcnow
from . import chrome, inputs
from .forms import EmptyForm

PAGE_SIZE = 50
POLL_SECONDS = 10


def _mine(plane: str):
    column = Notification.platform_user_id if plane == "system" else Notification.user_id
    return column == current_user.id


def unread_count(plane: str) -> int:
    return chrome.figures(plane)["unread"]


def bell_view(plane: str):
    """The bell fragment (htmx polls it)."""
    return render_template("_bell.html", plane=plane, unread=unread_count(plane))


def list_view(plane: str):
    before = inputs.arg_int("before")
    q = select(Notification).where(_mine(plane))
    if before:
        q = q.where(Notification.id < before)
    rows = db.session.scalars(q.order_by(Notification.id.desc()).limit(PAGE_SIZE + 1)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template("notifications.html", layout=f"{plane}/layout.html", plane=plane, rows=rows,
                           unread=unread_count(plane), form=EmptyForm(),
                           next_url=url_for(f"{plane}.notifications", before=rows[-1].id) if more else None)


def target_url(plane: str, note: Notification) -> str | None:
    """Where a notification leads: its run, on the plane it was sent in (an approval
    notification: its request, or the run it started)."""
    if plane == "system" and note.approval_request_id is not None and note.run_id is None:
        return url_for("approvals.approval_detail", approval_id=note.approval_request_id)
    if note.run_id is None:
        return None
    if plane == "system":
        return url_for("runs.run_detail", run_id=note.run_id)
    run = db.session.get(OperationRun, note.run_id)
    if run is None or run.tenant_id is None or current_user.membership_for(run.workspace_id) is None:
        return None
    return url_for("admin.tenant_run", tenant_id=run.tenant_id, run_id=run.id)


def open_view(plane: str, notification_id: int):
    """Mark one read and go where it leads (the list when it leads nowhere)."""
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    note = db.session.get(Notification, notification_id)
    if note is None or (note.platform_user_id if plane == "system" else note.user_id) != current_user.id:
        abort(404)
    if note.read_at is None:
        note.read_at = utcnow()
        db.session.commit()
    return redirect(target_url(plane, note) or url_for(f"{plane}.notifications"))


def read_all_view(plane: str):
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    db.session.execute(update(Notification).where(_mine(plane), Notification.read_at.is_(None))
                       .values(read_at=utcnow()))
    db.session.commit()
    return redirect(url_for(f"{plane}.notifications"))
