"""Signed, expiring download links (SPEC 5) and the daily prune of expired packs."""
import hashlib
from datetime import timedelta

import pytest

from review_pack_helpers import (TENANT_NAME, download_link, expire, pack, pack_stored, packs, request_pack,
                                 signed_in)
from tenantpilot_review_packs import plugin, service
from tenantpilot_review_packs.models import ReviewPack
from tests.helpers import audit_rows, count
from tenantpilot.sdk import AuditLog, artifact_info, db
from tenantpilot.testing import run_scheduled


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


@pytest.fixture
def world(app, factory):
    ws, other_ws = factory.workspace("Review WS"), factory.workspace("Other WS")
    tenant = factory.tenant(ws, name=TENANT_NAME)
    sibling = factory.tenant(ws, name="Sibling Tenant")  # same workspace, other tenant
    other = factory.tenant(other_ws, name="Fabrikam Elsewhere")
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager"), (other_ws, "manager")])
    readonly = factory.user(email="readonly@example.test", memberships=[(ws, "readonly")])
    outsider = factory.user(email="outsider@example.test", memberships=[(other_ws, "owner")])
    return {"tenant": tenant, "sibling": sibling, "other": other, "manager": manager, "readonly": readonly,
            "outsider": outsider}


def generated(app, client, tenant, drain, **options) -> ReviewPack:
    assert request_pack(client, tenant, **options).status_code == 302
    drain(app)
    return packs(app, tenant)[-1]


def test_a_signed_link_downloads_the_pack_before_it_expires(app, world, drain):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    p = generated(app, client, tenant, drain)
    link = download_link(client, tenant, p.id)
    r = client.get(link)
    assert r.status_code == 200 and r.mimetype == "application/zip"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=review-pack-")
    assert "no-store" in r.headers["Cache-Control"]
    body = r.get_data()
    assert body[:2] == b"PK" and len(body) == p.file_size and hashlib.sha256(body).hexdigest() == p.sha256
    (audit,) = audit_rows(app, "review_pack.downloaded")
    assert audit.target_id == str(p.id) and "token" not in str(audit.meta)

    # Any member may download (readonly too); the link alone is not enough without membership.
    readonly = signed_in(app, "admin", world["readonly"].email)
    assert readonly.get(link).status_code == 200
    assert signed_in(app, "admin", world["outsider"].email).get(link).status_code == 404
    assert app.test_client().get(link).status_code == 302  # signed out: to the login page


def test_an_expired_link_or_pack_answers_410(app, world, drain, clock):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    p = generated(app, client, tenant, drain)
    link = download_link(client, tenant, p.id)

    signed_at = clock()
    clock.advance(service.DEFAULT_LINK_SECONDS + 5)
    r = client.get(link)
    assert r.status_code == 410 and "This download link has expired" in r.get_data(as_text=True)
    clock.set(signed_at)
    assert client.get(link).status_code == 200  # the same link, still inside its lifetime

    expire(app, p.id)  # the pack itself expired (not yet pruned)
    r = client.get(link)
    assert r.status_code == 410 and "This download link has expired" in r.get_data(as_text=True)
    html = client.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)
    assert 'data-status="expired"' in html and f"/review-packs/{p.id}/download" not in html


def test_a_short_link_lifetime_is_configurable(app, make_app, world, drain, clock):
    short = make_app(plugins=[plugin], TENANTPILOT_REVIEW_PACK_LINK_SECONDS=1)
    client = signed_in(short, "admin", world["manager"].email)
    p = generated(short, client, world["tenant"], drain)
    link = download_link(client, world["tenant"], p.id)
    clock.advance(1)
    assert client.get(link).status_code == 200  # a second old: still inside its lifetime
    clock.advance(1)  # itsdangerous timestamps have a one-second resolution
    assert client.get(link).status_code == 410


def test_a_tampered_or_foreign_token_is_403(app, world, drain):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    first = generated(app, client, tenant, drain)
    second = generated(app, client, tenant, drain, ops=True)
    link = download_link(client, tenant, first.id)
    base, token = link.split("?token=")
    # Change the signature's first character: every bit of it counts (the last base64
    # character carries padding bits, so changing it can leave the signature intact).
    payload, signature = token.rsplit(".", 1)
    flipped = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert client.get(f"{base}?token={flipped}").status_code == 403
    assert client.get(base).status_code == 403  # no token at all
    assert client.get(f"{base}?token=not-a-token").status_code == 403
    # A genuine token of another pack of the same tenant does not open this one.
    other_token = download_link(client, tenant, second.id).split("?token=")[1]
    assert client.get(f"{base}?token={other_token}").status_code == 403
    # A session cookie's signature (another salt) is no download token either.
    with app.test_request_context():
        from itsdangerous import URLSafeTimedSerializer

        forged = URLSafeTimedSerializer(app.secret_key, salt="tenantpilot-admin-session").dumps(
            {"pack": first.id, "tenant": tenant.id})
    assert client.get(f"{base}?token={forged}").status_code == 403


def test_another_tenants_pack_in_this_tenants_url_is_404(app, world, drain):
    tenant, sibling, other = world["tenant"], world["sibling"], world["other"]
    client = signed_in(app, "admin", world["manager"].email)  # member of both workspaces
    foreign = generated(app, client, other, drain)
    sibling_pack = generated(app, client, sibling, drain)
    for p, owner in ((foreign, other), (sibling_pack, sibling)):
        link = download_link(client, owner, p.id)
        assert client.get(link).status_code == 200  # under its own tenant it works
        token = link.split("?token=")[1]
        assert client.get(f"/admin/t/{tenant.id}/review-packs/{p.id}/download?token={token}").status_code == 404
    assert client.get(f"/admin/t/{tenant.id}/review-packs/999999/download?token=x").status_code == 404


def test_a_pack_still_generating_has_no_download(app, world, drain):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    request_pack(client, tenant)
    queued = packs(app, tenant)[0]
    with app.app_context():
        token = service.download_token(db.session.get(ReviewPack, queued.id))
    assert client.get(f"/admin/t/{tenant.id}/review-packs/{queued.id}/download?token={token}").status_code == 404
    assert 'data-action="download"' not in client.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)


def test_prune_deletes_expired_rows_and_files_only(app, world, drain):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    old = generated(app, client, tenant, drain)
    kept = generated(app, client, tenant, drain, ops=True)
    expire(app, old.id, ago=timedelta(days=1))
    old_artifact = old.artifact_id

    with app.app_context():
        assert service.prune() == 1
    assert [p.id for p in packs(app)] == [kept.id]
    assert pack_stored(app, kept.id)
    with app.app_context():  # the expired pack's bytes went with its row
        assert artifact_info(old_artifact) is None and artifact_info(kept.artifact_id) is not None
    assert pack(app, kept.id).status == "ready"
    (audit,) = audit_rows(app, "review_packs.pruned")
    assert audit.meta == {"deleted": 1} and audit.workspace_id is None and audit.tenant_id is None
    with app.app_context():
        assert service.prune() == 0  # nothing left to do: nothing audited either
    assert count(app, AuditLog, AuditLog.action == "review_packs.pruned") == 1


def test_prune_runs_daily_from_the_one_scheduler_and_from_the_cli(app, make_app, world, drain):
    tenant = world["tenant"]
    client = signed_in(app, "admin", world["manager"].email)
    first = generated(app, client, tenant, drain)
    expire(app, first.id)
    other = make_app(plugins=[plugin])  # a second scheduler process on the same database
    assert "review_packs.prune" in run_scheduled(app)
    assert "review_packs.prune" not in run_scheduled(other)
    assert packs(app) == []
    with app.app_context():
        assert artifact_info(first.artifact_id) is None

    second = generated(app, client, tenant, drain)
    expire(app, second.id)
    result = app.test_cli_runner().invoke(args=["review-packs", "prune"])
    assert result.exit_code == 0 and result.output.strip() == "Deleted 1 expired review pack."
    assert packs(app) == []


def test_expiry_is_configurable_and_defaults_to_seven_days(app, make_app, world, drain):
    client = signed_in(app, "admin", world["manager"].email)
    p = generated(app, client, world["tenant"], drain)
    assert timedelta(days=6, hours=23) < p.expires_at - p.generated_at <= timedelta(days=7)
    short = make_app(plugins=[plugin], TENANTPILOT_REVIEW_PACK_EXPIRY_DAYS=1)
    client = signed_in(short, "admin", world["manager"].email)
    q = generated(short, client, world["tenant"], drain, ops=True)
    assert q.expires_at - q.generated_at <= timedelta(days=1)
