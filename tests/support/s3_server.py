"""moto's S3 server (a real HTTP S3 implementation) as a subprocess, for the artifact
store's bucket backend: there is no S3 service on the test machine. Import the fixtures
into a test module: ``from tests.support.s3_server import bucket, s3_server``."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free local port, for this module only."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto[server] is not installed (pip install -e '.[test]')")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def bucket(s3_server, monkeypatch):
    """A fresh bucket on the moto server; returns (name, boto3 client, app config)."""
    import boto3

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    name = f"tp-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    config = {"TENANTPILOT_ARTIFACT_BUCKET": name, "TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL": s3_server,
              "TENANTPILOT_ARTIFACT_S3_REGION": "us-east-1", "TENANTPILOT_ARTIFACT_S3_PREFIX": "packs/"}
    return name, client, config
