"""Helpers shared by the onboarding plugin's test modules (imported by basename)."""
from __future__ import annotations

import json
import re

from sqlalchemy import select

from tenantpilot.testing import post_form, signed_in  # noqa: F401  (signed_in: for the test modules)
from tenantpilot_onboarding.models import OnboardingDraft
from tenantpilot.sdk import Tenant, db
from tenantpilot.testing import ProductUsageEvent

EVENT = "product.onboarding.checkpoint_completed"
GUID = "11111111-2222-3333-4444-555555555555"  # the simulated provider grants it every permission
GUID_MISSING = "55555555-6666-7777-8888-999999999999"  # …withholds Policy.ReadWrite.ConditionalAccess




def identify(client, name="Contoso Ltd", guid=GUID):
    return post_form(client, "/admin/onboarding/", {"display_name": name,
                                                   "external_id": guid}, page="/admin/")


def draft_id_of(response) -> int:
    m = re.search(r"/admin/onboarding/(\d+)$", response.headers["Location"])
    assert m, response.headers.get("Location")
    return int(m.group(1))


def post(client, draft_id, step, **data):
    return post_form(client, f"/admin/onboarding/{draft_id}/{step}", {**data}, page="/admin/")


def draft_row(app, draft_id) -> OnboardingDraft:
    with app.app_context():
        draft = db.session.get(OnboardingDraft, draft_id)
        db.session.expunge(draft)
        return draft


def events(app, name=EVENT) -> list[ProductUsageEvent]:
    with app.app_context():
        rows = db.session.scalars(select(ProductUsageEvent).where(ProductUsageEvent.event_name == name)
                                  .order_by(ProductUsageEvent.id)).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def serialized(row: ProductUsageEvent) -> str:
    """Every column of an event row, as the dashboard or an export could see it."""
    return json.dumps({c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}, default=str)


def make_tenant(app, workspace, name, guid) -> int:
    """A tenant with a chosen GUID (the factory always generates one)."""

    with app.app_context():
        tenant = Tenant(workspace_id=workspace.id, name=name, external_id=guid)
        db.session.add(tenant)
        db.session.commit()
        return tenant.id
