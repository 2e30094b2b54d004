"""No shared disk (issue 17): the worker that builds a pack and the web process that serves
it each have an instance folder of their own; the pack travels through the artifact store
(the database, or an S3-compatible bucket when configured)."""
import hashlib
import io
import zipfile

import pytest

from review_pack_helpers import TENANT_NAME, download_link, pack_bytes, packs, request_pack, signed_in
from tenantpilot_review_packs import plugin
from tenantpilot.testing import Factory, drain_queues
from tests.support.s3_server import bucket, s3_server  # noqa: F401  (fixtures)


def two_processes(make_app, tmp_path, **config):
    """A web app and a worker app: own instance folders, same database and queue."""
    web = make_app(plugins=[plugin], INSTANCE_PATH=str(tmp_path / "web-instance"), **config)
    worker = make_app(plugins=[plugin], INSTANCE_PATH=str(tmp_path / "worker-instance"),
                      TENANTPILOT_QUEUE_PREFIX=web.config["TENANTPILOT_QUEUE_PREFIX"], **config)
    # One Redis for both, as in production (without a real Redis the test queue lives in
    # the web app's in-process server: the worker app is pointed at that same server).
    worker.extensions["tenantpilot"].redis = web.extensions["tenantpilot"].redis
    return web, worker


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def build_and_download(web, worker, factory) -> tuple[object, bytes]:
    ws = factory.workspace("Storage WS")
    tenant = factory.tenant(ws, name=TENANT_NAME)
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    client = signed_in(web, "admin", manager.email)
    assert request_pack(client, tenant, ops=True).status_code == 302
    drain_queues(worker)  # the pack is built by the worker app, not the web app
    (pack,) = packs(web, tenant)
    assert pack.status == "ready"
    response = client.get(download_link(client, tenant, pack.id))
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Length"] == str(pack.file_size)
    return pack, response.get_data()


def test_a_pack_built_by_one_worker_downloads_from_a_web_process_with_another_disk(make_app, tmp_path):
    web, worker = two_processes(make_app, tmp_path)
    pack, body = build_and_download(web, worker, Factory(web))
    assert hashlib.sha256(body).hexdigest() == pack.sha256 and len(body) == pack.file_size
    assert body == pack_bytes(worker, pack.id)  # the bytes the worker stored, exactly
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert {"manifest.json", "operation_runs.json"} <= set(zf.namelist())
    # Neither process kept the pack on its own disk.
    for folder in ("web-instance", "worker-instance"):
        assert not [f for f in files_under(tmp_path / folder) if f.endswith(".zip") or "review_packs" in f]


def test_with_a_bucket_the_pack_goes_through_s3(make_app, tmp_path, bucket):
    name, client, config = bucket
    web, worker = two_processes(make_app, tmp_path, **config)
    pack, body = build_and_download(web, worker, Factory(web))
    assert hashlib.sha256(body).hexdigest() == pack.sha256
    (key,) = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
    assert client.get_object(Bucket=name, Key=key)["Body"].read() == body
