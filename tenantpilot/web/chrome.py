"""The live figures every signed-in page's chrome shows: unread notifications (the bell),
pending approvals (the platform nav) and the operator's open break-glass session (the
banner, and the actor of anything started).

They used to cost a query each on every page; here they come from one statement, run the
first time a page asks for any of them. A commit later in the same request (a view that
marks notifications read, starts break-glass, …) drops the figures, so the page never shows
what was true before its own change.
"""
from __future__ import annotations

from flask import g, has_request_context
from flask_login import current_user
from sqlalchemy import event, func, literal, select
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import ApprovalRequest, BreakGlassSession, Notification
from ..timeutil import utcnow


def figures(plane: str) -> dict:
    """{"unread", "pending_approvals", "break_glass_id"} for the signed-in person of ``plane``."""
    cached = g.get("_chrome")
    if cached is not None and cached["plane"] == plane:
        return cached
    mine = (Notification.platform_user_id if plane == "system" else Notification.user_id) == current_user.id
    unread = select(func.count()).select_from(Notification).where(mine, Notification.read_at.is_(None))
    columns = [unread.scalar_subquery().label("unread")]
    if plane == "system":
        pending = select(func.count()).select_from(ApprovalRequest).where(ApprovalRequest.status == "pending")
        break_glass = (select(BreakGlassSession.id)
                       .where(BreakGlassSession.platform_user_id == current_user.id,
                              BreakGlassSession.ended_at.is_(None), BreakGlassSession.expires_at > utcnow())
                       .order_by(BreakGlassSession.id.desc()).limit(1))
        columns += [pending.scalar_subquery().label("pending"), break_glass.scalar_subquery().label("bg")]
    else:
        columns += [literal(0).label("pending"), literal(None).label("bg")]
    row = db.session.execute(select(*columns)).one()
    g._chrome = {"plane": plane, "unread": row.unread or 0, "pending_approvals": row.pending or 0,
                 "break_glass_id": row.bg}
    return g._chrome


@event.listens_for(Session, "after_commit")
def _forget(session) -> None:
    if has_request_context():
        g.pop("_chrome", None)
