"""The artifact store (tenantpilot.artifacts): blobs every process reaches, in the database
by default or in an S3-compatible bucket (moto's real HTTP S3 server, run as a
subprocess: there is no S3 service on the test machine)."""
from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tenantpilot import artifacts
from tenantpilot.artifacts import Artifact, ArtifactChunk, ArtifactMissing, ArtifactStoreError
from tenantpilot.extensions import db
from tenantpilot.testing import run_scheduled
from tenantpilot.timeutil import utcnow
from tests.support.s3_server import bucket, free_port, s3_server  # noqa: F401  (fixtures)

MIB = 1024 * 1024


def blob(n: int) -> bytes:
    return os.urandom(n)


def pieces(data: bytes, size: int):
    """An iterable source in odd-sized pieces (as a generator of a writer would give)."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def rows(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# --- database backend ------------------------------------------------------------------

def test_a_blob_is_stored_in_one_mib_chunks_and_streams_back_identical(app):
    data = blob(2 * MIB + 12345)
    with app.app_context():
        artifact_id = artifacts.put(pieces(data, 300_001), name="big.bin", owner="test:1")
        db.session.commit()
    with app.app_context():
        info = artifacts.info(artifact_id)
        assert (info.name, info.content_type, info.size, info.owner) == ("big.bin", "application/octet-stream",
                                                                        len(data), "test:1")
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        chunks = list(artifacts.stream(artifact_id))
    assert [len(c) for c in chunks] == [MIB, MIB, 12345]  # never more than a chunk at a time
    assert b"".join(chunks) == data
    assert rows(app, ArtifactChunk, ArtifactChunk.artifact_id == artifact_id) == 3


@pytest.mark.parametrize("source", ["bytes", "file", "empty"])
def test_bytes_and_file_objects_are_sources_too(app, tmp_path, source):
    data = b"" if source == "empty" else blob(MIB + 1)
    with app.app_context():
        if source == "file":
            path = tmp_path / "src"
            path.write_bytes(data)
            with path.open("rb") as f:
                artifact_id = artifacts.put(f, name="f.bin", content_type="application/zip")
        else:
            artifact_id = artifacts.put(data, name="b.bin")
        db.session.commit()
    with app.app_context():
        assert artifacts.read(artifact_id) == data
        assert artifacts.info(artifact_id).size == len(data)


def test_a_rolled_back_write_leaves_nothing(app):
    with app.app_context():
        artifacts.put(blob(MIB + 5), name="never.bin")
        db.session.rollback()  # e.g. the job building it failed after the write
    assert rows(app, Artifact) == 0 and rows(app, ArtifactChunk) == 0


def test_delete_removes_the_row_and_its_chunks_only(app):
    with app.app_context():
        gone = artifacts.put(blob(MIB + 1), name="gone.bin")
        kept = artifacts.put(b"kept", name="kept.bin")
        db.session.commit()
        assert artifacts.delete(gone) is True
        assert artifacts.delete(gone) is False
    with app.app_context():
        assert artifacts.info(gone) is None and artifacts.read(kept) == b"kept"
        with pytest.raises(ArtifactMissing):
            artifacts.stream(gone)
    assert rows(app, ArtifactChunk) == 1


def test_the_scheduler_sweeps_expired_artifacts(app):
    now = utcnow()
    with app.app_context():
        old = artifacts.put(b"old", name="old.bin", expires_at=now - timedelta(minutes=1))
        fresh = artifacts.put(b"fresh", name="fresh.bin", expires_at=now + timedelta(days=1))
        forever = artifacts.put(b"forever", name="forever.bin")
        db.session.commit()
    assert "ops.prune_artifacts" in run_scheduled(app)
    with app.app_context():
        assert artifacts.info(old) is None
        assert artifacts.read(fresh) == b"fresh" and artifacts.read(forever) == b"forever"


def test_send_streams_an_attachment_with_length_and_etag(app):
    data = blob(MIB + 77)
    with app.app_context():
        artifact_id = artifacts.put(data, name="x.zip", content_type="application/zip")
        db.session.commit()
    digest = hashlib.sha256(data).hexdigest()
    with app.test_request_context("/"):
        response = artifacts.send(artifact_id, download_name="Prüfbericht 1.zip")
        assert response.status_code == 200 and response.is_streamed
        assert response.mimetype == "application/zip" and response.content_length == len(data)
        assert response.headers["ETag"] == f'"{digest}"'
        assert response.headers["Cache-Control"] == "private, no-store"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment; filename=") and "filename*=UTF-8''Pr%C3%BCfbericht%201.zip" in disposition
        body = b"".join(response.response)
    assert body == data
    with app.test_request_context("/", headers={"If-None-Match": f'"{digest}"'}):
        assert artifacts.send(artifact_id).status_code == 304


def test_another_app_with_another_instance_folder_reads_the_same_artifact(make_app, tmp_path):
    """Two processes without a shared disk: only the database is common."""
    writer = make_app(INSTANCE_PATH=str(tmp_path / "a"))
    reader = make_app(INSTANCE_PATH=str(tmp_path / "b"))
    data = blob(MIB + 3)
    with writer.app_context():
        artifact_id = artifacts.put(data, name="shared.bin")
        db.session.commit()
    with reader.app_context():
        assert artifacts.read(artifact_id) == data


# --- S3-compatible bucket (moto server) ------------------------------------------------

def objects(client, name) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]


def test_with_a_bucket_the_bytes_go_to_s3_and_stream_back(make_app, bucket):
    name, client, config = bucket
    app = make_app(**config)
    data = blob(9 * MIB + 5)  # more than one multipart part
    with app.app_context():
        artifact_id = artifacts.put(pieces(data, 700_000), name="s3.bin", content_type="application/zip")
        db.session.commit()
    (key,) = objects(client, name)
    assert key.startswith("packs/") and "s3.bin" not in key  # a random key: the name is for people
    assert client.get_object(Bucket=name, Key=key)["Body"].read() == data
    assert rows(app, ArtifactChunk) == 0  # nothing of it in the database
    with app.app_context():
        info = artifacts.info(artifact_id)
        assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert artifacts.read(artifact_id) == data
        assert artifacts.delete(artifact_id) is True
    assert objects(client, name) == []


def test_an_artifact_keeps_its_backend_when_the_bucket_setting_changes(make_app, bucket):
    name, client, config = bucket
    in_db = make_app()
    in_s3 = make_app(**config)
    with in_db.app_context():
        a = artifacts.put(b"from the database", name="a.bin")
        db.session.commit()
    with in_s3.app_context():
        b = artifacts.put(b"from the bucket", name="b.bin")
        db.session.commit()
        assert artifacts.read(a) == b"from the database"
    with in_db.app_context():
        # An app without the bucket settings cannot reach the bucket's artifact, and says so
        # (rather than asking some default endpoint).
        with pytest.raises(ArtifactStoreError, match="TENANTPILOT_ARTIFACT_BUCKET"):
            artifacts.read(b)
    with in_s3.app_context():
        assert artifacts.read(b) == b"from the bucket"


def test_an_object_gone_from_the_bucket_is_missing(make_app, bucket):
    name, client, config = bucket
    app = make_app(**config)
    with app.app_context():
        artifact_id = artifacts.put(b"soon gone", name="gone.bin")
        db.session.commit()
    for key in objects(client, name):
        client.delete_object(Bucket=name, Key=key)
    with app.app_context():
        with pytest.raises(ArtifactMissing):
            list(artifacts.stream(artifact_id))


def test_an_unreachable_bucket_is_a_store_error_and_writes_no_row(make_app, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    app = make_app(TENANTPILOT_ARTIFACT_BUCKET="nowhere", TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
                   TENANTPILOT_ARTIFACT_S3_REGION="us-east-1")
    with app.app_context():
        with pytest.raises(ArtifactStoreError):
            artifacts.put(b"x", name="x.bin")
        db.session.rollback()
    assert rows(app, Artifact) == 0
