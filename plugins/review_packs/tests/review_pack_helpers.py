"""Helpers shared by the review pack test modules (imported by basename: pytest puts this
folder on sys.path for its test modules)."""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import timedelta

from sqlalchemy import insert, select

from tenantpilot.api import OperationType
from tenantpilot.testing import post_form, signed_in  # noqa: F401  (signed_in: for the test modules)
from tenantpilot_findings.models import Finding
from tenantpilot_review_packs import service
from tenantpilot_review_packs.models import ReviewPack
from tenantpilot.sdk import (Actor, Scope, User, db, delete_artifacts, hookimpl, start_operation, stream_artifact,
                             utcnow)
from tenantpilot.testing import ProductUsageEvent

PERSON = "Petra Pilot"
PERSON_EMAIL = "petra.pilot@example.test"
TENANT_NAME = "Contoso Review HQ"
NOOP = "rp_test.noop"


class NoopOperations:
    """A tiny operation type any member may start: gives the tenant operation runs with a
    person as initiator, independent of other plugins' behaviour."""

    @hookimpl
    def tenantpilot_register_operation_types(self, app):
        return OperationType(key=NOOP, label="Noop check", execute_tenant=lambda job: {"processed": 1},
                             tenant_capabilities=("tenant.view",), scopes=("single_tenant",))


def rename(app, user, name):
    with app.app_context():
        db.session.get(User, user.id).name = name
        db.session.commit()




def request_pack(client, tenant, *, ops=False, pii=False, extra=None):
    data = {}
    if ops:
        data["include_operations"] = "y"
    if pii:
        data["include_pii"] = "y"
    data.update(extra or {})
    return post_form(client, f"/admin/t/{tenant.id}/review-packs", data, page="/admin/")


def add_findings(app, tenant, n=3, **kw) -> list[int]:
    with app.app_context():
        ids = []
        for i in range(n):
            row = {"tenant_id": tenant.id, "type": "drift", "severity": ("high", "medium", "low")[i % 3],
                   "status": "new", "title": f"Setting {i} drifted", "created_at": utcnow(), **kw}
            ids.append(db.session.execute(insert(Finding).values(**row).returning(Finding.id)).scalar_one())
        db.session.commit()
        return ids


def start_noop(app, tenant, user, drain):
    with app.app_context():
        result = start_operation(NOOP, scope=Scope("single_tenant", tenant_id=tenant.id),
                            actor=Actor.human(db.session.get(User, user.id)), source="tenant_ui",
                            identity_inputs={"n": utcnow().isoformat()})
        assert result.status == "started", result
        run_id = result.run.id
    drain()
    return run_id


def packs(app, tenant=None) -> list[ReviewPack]:
    with app.app_context():
        q = select(ReviewPack).order_by(ReviewPack.id)
        if tenant is not None:
            q = q.where(ReviewPack.tenant_id == tenant.id)
        rows = db.session.scalars(q).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def pack(app, pack_id) -> ReviewPack:
    with app.app_context():
        row = db.session.get(ReviewPack, pack_id)
        db.session.expunge(row)
        return row


def pack_stored(app, pack_id) -> bool:
    """Whether the pack's bytes are in the artifact store."""
    with app.app_context():
        return service.has_artifact(db.session.get(ReviewPack, pack_id))


def pack_bytes(app, pack_id) -> bytes:
    """The pack's ZIP as the artifact store holds it."""
    with app.app_context():
        artifact_id = db.session.get(ReviewPack, pack_id).artifact_id
        return b"".join(stream_artifact(artifact_id))


def lose_pack_bytes(app, pack_id) -> None:
    """The pack's stored bytes disappear behind its back (e.g. an operator emptied a bucket)."""
    with app.app_context():
        delete_artifacts([db.session.get(ReviewPack, pack_id).artifact_id])


def zip_files(app, pack_id) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pack_bytes(app, pack_id))) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def json_of(data: bytes):
    return json.loads(data.decode("utf-8"))


def events(app) -> list[dict]:
    """The review pack events, serialized as a dashboard or an export would see them."""
    with app.app_context():
        return [{"workspace_id": e.workspace_id, "tenant_id": e.tenant_id, "user_id": e.user_id,
                 "event_name": e.event_name, "feature_area": e.feature_area, "subject_type": e.subject_type,
                 "subject_id": e.subject_id, "metadata": e.meta}
                for e in db.session.scalars(select(ProductUsageEvent)
                                            .where(ProductUsageEvent.event_name == service.EVENT)
                                            .order_by(ProductUsageEvent.id))]


def download_link(client, tenant, pack_id) -> str:
    html = client.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)
    m = re.search(rf'href="(/admin/t/{tenant.id}/review-packs/{pack_id}/download\?token=[^"]+)"', html)
    assert m, f"no download link for pack {pack_id}"
    return m.group(1).replace("&amp;", "&")


def expire(app, pack_id, ago=timedelta(minutes=1)):
    with app.app_context():
        db.session.get(ReviewPack, pack_id).expires_at = utcnow() - ago
        db.session.commit()
