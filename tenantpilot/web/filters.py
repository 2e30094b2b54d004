"""Jinja filters and globals shared by both planes."""
from __future__ import annotations

from ..planes import current_plane
from . import times

BADGES = {
    "queued": "neutral", "running": "info", "completed": "neutral",
    "pending": "neutral", "succeeded": "ok", "partially_succeeded": "warn", "failed": "bad",
    "blocked": "warn", "cancelled": "neutral", "skipped": "neutral", "success": "ok",
    "enabled": "ok", "paused": "warn", "sent": "ok",
    "approved": "ok", "rejected": "bad", "expired": "neutral",
    "applied": "ok", "unchanged": "neutral", "healthy": "ok", "failing": "bad", "unverified": "neutral",
}


def register(app):
    times.register(app)  # |when, |duration: the one way times are shown
    app.jinja_env.filters["badge"] = lambda status: BADGES.get(status, "neutral")
    app.jinja_env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    app.jinja_env.filters["humanize"] = lambda s: (s or "").replace("_", " ")

    @app.context_processor
    def _plane():
        return {"plane": current_plane()}

    def tenant_pages(membership):
        """Tenant tabs the member may see."""
        pages = app.extensions["tenantpilot"].registry.tenant_pages
        return [p for p in pages if membership is not None and p.capability in membership.capabilities]

    def tenant_actions(membership, surface):
        """Plugin actions of a tenant-plane surface the member may use."""
        actions = app.extensions["tenantpilot"].registry.tenant_actions
        return [a for a in actions
                if membership is not None and surface in a.surfaces and a.capability in membership.capabilities]

    from .. import idempotency

    app.jinja_env.globals["idempotency_field"] = idempotency.field
    from . import notifications

    app.jinja_env.globals["notifications_unread"] = notifications.unread_count
    app.jinja_env.globals["notifications_poll_seconds"] = notifications.POLL_SECONDS
    from .. import approvals

    from . import chrome

    app.jinja_env.globals["approvals_pending_count"] = lambda: chrome.figures("system")["pending_approvals"]
    app.jinja_env.globals["approval_scopes"] = approvals.approval_scopes
    app.jinja_env.globals["tenant_pages"] = tenant_pages
    app.jinja_env.globals["tenant_actions"] = tenant_actions

    def workspace_actions(membership):
        """Plugin links of the workspace header the member may use."""
        actions = app.extensions["tenantpilot"].registry.workspace_actions
        return [a for a in actions if membership is not None and a.capability in membership.capabilities]

    app.jinja_env.globals["workspace_actions"] = workspace_actions
