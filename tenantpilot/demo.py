"""Demo data (SPEC 10): only created by an explicit `flask demo seed`."""
from __future__ import annotations

import uuid

from sqlalchemy import func, select

from .extensions import db
from .models import Membership, PlatformUser, Tenant, User, Workspace

WORKSPACES = {
    "Northwind Traders": ["Northwind HQ", "Northwind Retail", "Northwind Logistics", "Northwind Labs"],
    "Fabrikam": ["Fabrikam Corp", "Fabrikam Europe", "Fabrikam Asia", "Fabrikam Research"],
    "Adventure Works": ["Adventure Works Cycles", "Adventure Works Outdoor", "Adventure Works Online",
                        "Adventure Works Rentals"],
}
TENANT_ROLES = ("owner", "manager", "operator", "readonly")
LOGINS = [
    ("Platform operator", "ops@demo.test", "demo-ops-pass", "/system"),
    ("Platform viewer", "viewer@demo.test", "demo-viewer-pass", "/system"),
    # A second operator: four-eyes approval needs someone other than the requester.
    ("Platform approver", "approver@demo.test", "demo-approver-pass", "/system"),
] + [(f"Tenant {r}", f"{r}@demo.test", f"demo-{r}-pass", "/admin") for r in TENANT_ROLES]


def is_seeded() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(PlatformUser).where(PlatformUser.email == "ops@demo.test")))


def seed(all_platform_capabilities: tuple[str, ...]) -> dict:
    """Idempotent: re-running adds nothing that already exists."""
    if is_seeded():
        return {"created": False}
    namespace = uuid.UUID("6f1c5b1e-0000-4000-8000-000000000000")
    workspaces = []
    for ws_name, tenant_names in WORKSPACES.items():
        ws = Workspace(name=ws_name, slug=ws_name.lower().replace(" ", "-"))
        db.session.add(ws)
        for name in tenant_names:
            db.session.add(Tenant(workspace=ws, name=name, external_id=str(uuid.uuid5(namespace, name)),
                                  status="active"))
        workspaces.append(ws)
    ops = PlatformUser(email="ops@demo.test", name="Olivia Ops", capabilities=list(all_platform_capabilities))
    ops.set_password("demo-ops-pass")
    viewer = PlatformUser(email="viewer@demo.test", name="Victor Viewer",
                          capabilities=["platform.access_system_panel", "platform.console.view"])
    viewer.set_password("demo-viewer-pass")
    approver = PlatformUser(email="approver@demo.test", name="Amir Approver",
                            capabilities=list(all_platform_capabilities))
    approver.set_password("demo-approver-pass")
    db.session.add_all([ops, viewer, approver])
    for role in TENANT_ROLES:
        user = User(email=f"{role}@demo.test", name=f"{role.title()} Demo")
        user.set_password(f"demo-{role}-pass")
        db.session.add(user)
        # Members of the first two workspaces; the third shows the 404 for non-members.
        for ws in workspaces[:2]:
            db.session.add(Membership(user=user, workspace=ws, role=role))
    db.session.commit()
    return {"created": True, "workspaces": len(workspaces), "tenants": sum(map(len, WORKSPACES.values()))}
