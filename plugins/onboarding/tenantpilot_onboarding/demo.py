"""Demo data for `flask demo seed`: one prospective tenant identified in the first
workspace, waiting for its provider connection."""
from __future__ import annotations

from sqlalchemy import select

from tenantpilot.sdk import Membership, User, Workspace, db
from . import service


def seed() -> None:
    workspace = db.session.scalars(select(Workspace).order_by(Workspace.id)).first()
    user = db.session.scalars(select(User).join(Membership, Membership.user_id == User.id).where(
        Membership.workspace_id == workspace.id, Membership.role.in_(("owner", "manager")))
        .order_by(User.id)).first() if workspace else None
    guid = "5d0c8a8e-3f4b-4c6e-9a1d-2b7e6f9c0a41"
    if user is None or service.guid_error(guid) is not None:
        return
    service.create_draft(workspace.id, "Northwind Traders", guid, user)
