"""Artifact store: named binary blobs every process can reach (no shared disk needed).

On a PaaS each process (web, worker, scheduler, release) is its own container with an
ephemeral filesystem, so a file one process writes is invisible to the others. An
artifact is a blob with a name, content type, size, sha256, an owner reference (a free
string such as ``"review_pack:12"``: the core knows no domain) and an optional expiry.

Where the bytes live:

- **database** (default): ``artifact_chunks`` rows of at most ``CHUNK_BYTES`` each, so a
  write and a download hold one chunk in memory, never the whole blob, on PostgreSQL and
  SQLite alike. The chunks are written with the caller's transaction: a blob is visible
  exactly when the row that refers to it commits, and a rolled-back build leaves nothing.
- **S3-compatible bucket** when ``TENANTPILOT_ARTIFACT_BUCKET`` is set (boto3; endpoint
  ``TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL``, credentials from the standard ``AWS_*``
  variables). The object is uploaded before the row is added; a transaction that then
  rolls back leaves an object no row names (a bucket lifecycle rule can sweep them).

Each row records its backend, so artifacts written before a switch stay readable.
"""
from __future__ import annotations

import hashlib
import io
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Iterable, Iterator
from urllib.parse import quote

from flask import Response, current_app, request
from sqlalchemy import BigInteger, Index, LargeBinary, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.artifacts")
CHUNK_BYTES = 1024 * 1024
BACKENDS = ("db", "s3")


class Artifact(db.Model):
    """One stored blob. ``storage_key`` is the object key in the bucket (s3 backend)."""

    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_owner", "owner"),
        Index("ix_artifacts_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(db.String(255))
    content_type: Mapped[str] = mapped_column(db.String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(db.String(64))
    owner: Mapped[str | None] = mapped_column(db.String(200))
    backend: Mapped[str] = mapped_column(db.String(10))
    storage_key: Mapped[str | None] = mapped_column(db.String(500))
    chunk_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(db.DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(db.DateTime)


class ArtifactChunk(db.Model):
    """``seq``-th slice (0-based) of a database-backed artifact."""

    __tablename__ = "artifact_chunks"

    artifact_id: Mapped[int] = mapped_column(db.ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ArtifactMissing(LookupError):
    """No such artifact (deleted, pruned, or its object is gone from the bucket)."""


class ArtifactStoreError(RuntimeError):
    """The store could not take or give the bytes (bucket unreachable, database error)."""


@dataclass(frozen=True)
class ArtifactInfo:
    """What a caller may keep of an artifact after its session is gone."""

    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    owner: str | None
    created_at: datetime
    expires_at: datetime | None


def _info(a: Artifact) -> ArtifactInfo:
    return ArtifactInfo(a.id, a.name, a.content_type, a.size, a.sha256, a.owner, a.created_at, a.expires_at)


# --- configuration ---------------------------------------------------------------------

def bucket() -> str | None:
    return current_app.config.get("TENANTPILOT_ARTIFACT_BUCKET") or None


def _s3_client():
    """The app's boto3 client, made once per app (clients are thread-safe; kept on the
    app's state, so two apps in one process with different endpoints stay apart)."""
    state = current_app.extensions["tenantpilot"]
    client = getattr(state, "artifact_s3_client", None)
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", endpoint_url=current_app.config.get("TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL") or None,
            region_name=current_app.config.get("TENANTPILOT_ARTIFACT_S3_REGION") or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60))
        state.artifact_s3_client = client
    return client


def _s3_key() -> str:
    prefix = current_app.config.get("TENANTPILOT_ARTIFACT_S3_PREFIX") or ""
    # A random key: the artifact's name is for people (Content-Disposition), never a path.
    return f"{prefix}{uuid.uuid4().hex}"


# --- writing ---------------------------------------------------------------------------

def _chunks(source: bytes | IO[bytes] | Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-slice any source into pieces of exactly ``size`` bytes (the last one shorter)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        while piece := source.read(size):
            yield piece
        return
    buffer = bytearray()
    for piece in source:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def put(source: bytes | IO[bytes] | Iterable[bytes], *, name: str, content_type: str = "application/octet-stream",
        owner: str | None = None, expires_at: datetime | None = None) -> int:
    """Store ``source`` (bytes, a binary file object or an iterable of bytes) and return the
    new artifact's id. Written with the caller's transaction (flushed, not committed): the
    caller's commit makes it visible; a rollback removes it (database backend)."""
    if bucket():
        return _put_s3(source, name=name, content_type=content_type, owner=owner, expires_at=expires_at)
    digest, size, now = hashlib.sha256(), 0, utcnow()
    artifact = Artifact(name=name[:255], content_type=content_type, size=0, sha256="", owner=owner, backend="db",
                        created_at=now, expires_at=expires_at)
    db.session.add(artifact)
    db.session.flush()
    seq = 0
    for piece in _chunks(source, CHUNK_BYTES):
        # One INSERT per chunk: the bytes go to the database now, nothing piles up in the
        # session (an ORM object per chunk would keep every chunk alive until commit).
        db.session.execute(insert(ArtifactChunk).values(artifact_id=artifact.id, seq=seq, data=piece))
        digest.update(piece)
        size += len(piece)
        seq += 1
    artifact.size, artifact.sha256, artifact.chunk_count = size, digest.hexdigest(), seq
    db.session.flush()
    return artifact.id


class _HashingReader(io.RawIOBase):
    """Feeds boto3's multipart upload while counting and hashing what it reads."""

    def __init__(self, source):
        self._pieces = _chunks(source, CHUNK_BYTES)
        self._buffer = b""
        self.digest, self.size = hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buffer:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self.digest.update(piece)
            self.size += len(piece)
            self._buffer = piece
        n = min(len(b), len(self._buffer))
        b[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def _put_s3(source, *, name, content_type, owner, expires_at) -> int:
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    key, target = _s3_key(), bucket()
    reader = _HashingReader(source)
    try:
        _s3_client().upload_fileobj(io.BufferedReader(reader, CHUNK_BYTES), target, key,
                                    ExtraArgs={"ContentType": content_type},
                                    Config=TransferConfig(multipart_chunksize=8 * CHUNK_BYTES, use_threads=False))
    except (BotoCoreError, ClientError) as exc:
        log.error("artifact upload failed", extra={"error": type(exc).__name__})
        raise ArtifactStoreError("The artifact could not be uploaded to the bucket.") from None
    artifact = Artifact(name=name[:255], content_type=content_type, size=reader.size, sha256=reader.digest.hexdigest(),
                        owner=owner, backend="s3", storage_key=f"{target}/{key}", chunk_count=0, created_at=utcnow(),
                        expires_at=expires_at)
    db.session.add(artifact)
    db.session.flush()
    return artifact.id


# --- reading ---------------------------------------------------------------------------

def info(artifact_id: int | None) -> ArtifactInfo | None:
    """The artifact's metadata, or None when there is no such artifact."""
    a = db.session.get(Artifact, artifact_id) if artifact_id is not None else None
    return _info(a) if a is not None else None


def exists(artifact_id: int | None) -> bool:
    return info(artifact_id) is not None


def stream(artifact_id: int) -> Iterator[bytes]:
    """The artifact's bytes as an iterator of chunks (raises ``ArtifactMissing`` now, not
    while iterating, when there is no such artifact).

    The iterator holds no session: database chunks are read one per query on a connection
    of its own, so it can outlive the request's session (a streamed response)."""
    a = db.session.get(Artifact, artifact_id)
    if a is None:
        raise ArtifactMissing(artifact_id)
    if a.backend == "s3":
        if not bucket():
            # Never guess a bucket's whereabouts (a default endpoint would be AWS itself).
            raise ArtifactStoreError("This artifact is in a bucket, but no TENANTPILOT_ARTIFACT_BUCKET is set.")
        target, _, key = a.storage_key.partition("/")
        return _s3_stream(_s3_client(), target, key)
    return _db_stream(db.engine, a.id, a.chunk_count)


def _db_stream(engine, artifact_id: int, count: int) -> Iterator[bytes]:
    query = select(ArtifactChunk.data).where(ArtifactChunk.artifact_id == artifact_id)
    # tenantpilot_read_only: on SQLite this connection takes no write lock (app.py), so a
    # caller whose own session holds one can still read.
    with engine.connect().execution_options(tenantpilot_read_only=True) as conn:
        for seq in range(count):
            piece = conn.execute(query.where(ArtifactChunk.seq == seq)).scalar()
            conn.rollback()  # no transaction (nor SQLite read snapshot) held between chunks
            if piece is None:
                raise ArtifactMissing(artifact_id)  # deleted while being read
            yield piece


def _s3_stream(client, target: str, key: str) -> Iterator[bytes]:
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=target, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise ArtifactMissing(key) from None
        raise ArtifactStoreError("The artifact could not be read from the bucket.") from None
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def read(artifact_id: int) -> bytes:
    """The whole artifact in memory (small artifacts, tests)."""
    return b"".join(stream(artifact_id))


def _disposition(response: Response, filename: str) -> None:
    # As werkzeug's send_file: an ASCII filename, plus RFC 5987 filename* when the name
    # has characters an old client would mangle.
    try:
        filename.encode("ascii")
        names = {"filename": filename}
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
        names = {"filename": simple, "filename*": f"UTF-8''{quote(filename, safe='!#$&+-.^_`|~')}"}
    response.headers.set("Content-Disposition", "attachment", **names)


def send(artifact_id: int, *, download_name: str | None = None, cache_control: str = "private, no-store") -> Response:
    """A streamed download of the artifact: Content-Length, Content-Disposition attachment,
    the sha256 as a strong ETag (If-None-Match → 304). Raises ``ArtifactMissing``."""
    a = db.session.get(Artifact, artifact_id)
    if a is None:
        raise ArtifactMissing(artifact_id)
    body = stream(artifact_id)
    response = Response(body, mimetype=a.content_type, direct_passthrough=True)
    response.content_length = a.size
    _disposition(response, download_name or a.name)
    response.headers["Cache-Control"] = cache_control
    response.set_etag(a.sha256)
    response.make_conditional(request)
    if response.status_code == 304 and hasattr(body, "close"):
        body.close()  # never started: release the generator (and its connection) now
    return response


# --- deleting --------------------------------------------------------------------------

def delete_many(artifact_ids: Iterable[int]) -> int:
    """Delete these artifacts and commit; returns how many rows went. Bucket objects go
    after the commit (a crash in between leaves an object no row names, never a row whose
    object is missing)."""
    ids = [i for i in dict.fromkeys(artifact_ids) if i is not None]
    if not ids:
        return 0
    keys = list(db.session.scalars(select(Artifact.storage_key).where(Artifact.id.in_(ids), Artifact.backend == "s3")))
    db.session.execute(sql_delete(ArtifactChunk).where(ArtifactChunk.artifact_id.in_(ids)))
    deleted = db.session.execute(sql_delete(Artifact).where(Artifact.id.in_(ids))
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if keys and not bucket():
        log.warning("bucket artifacts deleted without bucket settings: objects left", extra={"objects": len(keys)})
        keys = []
    for storage_key in keys:
        target, _, key = storage_key.partition("/")
        try:
            _s3_client().delete_object(Bucket=target, Key=key)
        except Exception as exc:  # noqa: BLE001 - the row is gone; a stray object is harmless
            log.warning("artifact object not deleted", extra={"error": type(exc).__name__})
    return deleted


def delete(artifact_id: int) -> bool:
    """Delete one artifact (commits); False when there was none."""
    return delete_many([artifact_id]) == 1


def prune_expired(now: datetime | None = None, batch: int = 500) -> int:
    """Delete artifacts past their ``expires_at`` (the scheduler's hourly job)."""
    now = now or utcnow()
    total = 0
    while ids := list(db.session.scalars(select(Artifact.id).where(Artifact.expires_at <= now)
                                         .order_by(Artifact.id).limit(batch))):
        total += delete_many(ids)
    return total


__all__ = ["Artifact", "ArtifactChunk", "ArtifactInfo", "ArtifactMissing", "ArtifactStoreError", "delete",
           "delete_many", "exists", "info", "prune_expired", "put", "read", "send", "stream"]
