"""A local HTTPS stand-in for the Microsoft identity platform and Microsoft Graph v1.0.

For tests, demos and benches: a threaded ``http.server`` on 127.0.0.1 (random port),
TLS with a throwaway CA from ``trustme`` (a test dependency, imported on ``start``).
State lives in memory; every request is written to ``GraphStub.log``::

    with GraphStub(page_size=3) as stub:
        stub.add_policy("device_configuration", "Baseline", passwordRequired=True)
        app = make_app(plugins=[plugin], **stub.config())
        ...
        assert not stub.requests(method="PATCH")

Serves:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and
  ``POST /{tenant}/oauth2/v2.0/token`` (client credentials; checks client id + secret and
  issues an opaque bearer token);
- under ``/v1.0`` (bearer token required, 401 otherwise): the three policy collections
  (GET paged with ``@odata.nextLink``, POST), their items (GET, PATCH merging like Graph),
  ``/servicePrincipals(appId='…')/appRoleAssignments``, ``/servicePrincipals(appId='…')``
  and ``/roleManagement/directory/roleAssignments`` (``$expand=roleDefinition``).

Faults (``fail``) answer the next N matching requests with a status, headers and body,
optionally after a delay. Paths in ``fail`` and ``requests`` are Graph-relative
(``/deviceManagement/deviceConfigurations``) or, for the sign-in endpoints, as sent
(``/{tenant}/oauth2/v2.0/token``).

The log never holds the client secret or a token: a token request records the client id
only, and ``authorized`` says whether a Graph request carried a token the stub issued.
"""
from __future__ import annotations

import json
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from .client import GRAPH_APP_ID, POLICY_COLLECTIONS

GRAPH_PREFIX = "/v1.0"
FAULT_BODY_MARKER = "stub-fault-body"  # tests assert it never reaches an error message
# Graph application permissions the stub's Microsoft Graph service principal knows.
KNOWN_APP_ROLES = (
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
    "RoleManagement.Read.Directory",
    "Directory.Read.All",
    "Application.Read.All",
)


def _role_id(value: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-app-role:{value}"))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LoggedRequest:
    """One request the stub received."""

    method: str
    path: str            # Graph-relative for Graph requests, else as sent; no query
    query: str
    at: float            # time.monotonic() when it arrived
    authorized: bool     # carried a bearer token this stub issued (and has not revoked)
    graph: bool          # a Graph request (under /v1.0), not a sign-in one
    status: int = 0      # what the stub answered (0 while in flight)
    body: Any = None     # parsed JSON body of a Graph PATCH/POST
    client_id: str | None = None  # for token requests: the client id sent


@dataclass
class Fault:
    """Answer the next ``times`` requests matching method/path with ``status`` (after
    ``delay`` seconds). ``status=None`` only delays, then the request is served."""

    path: str | None
    status: int | None
    method: str | None = None
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method)
                and (self.path is None or self.path == path))


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    ssl_context: ssl.SSLContext
    stub: GraphStub

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, not in the accept loop.
        request.settimeout(10)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is expected (fault delays)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph; every answer has a Content-Length
    timeout = 30
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _TLSServer

    def log_message(self, format, *args):
        pass  # the stub's own request log is the record; keep stderr quiet

    def do_GET(self):
        self.server.stub._handle(self)

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def send_json(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class GraphStub:
    """The stub server and its in-memory tenant. Use as a context manager, or
    ``start()``/``stop()``."""

    def __init__(self, tenant_guid: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, page_size: int = 100, token_lifetime: int = 3600):
        self.tenant_guid = tenant_guid or str(uuid.uuid4())
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self.log: list[LoggedRequest] = []
        self.issued_tokens: list[str] = []
        self.policies: dict[str, dict[str, dict]] = {key: {} for key in POLICY_COLLECTIONS}
        self.graph_sp_id = str(uuid.uuid4())
        self.our_sp_id = str(uuid.uuid4())
        self.app_roles = {value: _role_id(value) for value in KNOWN_APP_ROLES}
        self.app_role_assignments: list[dict] = []
        self.role_assignments: list[dict] = []
        self._valid_tokens: set[str] = set()
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._dir: str | None = None
        self.port: int | None = None

    # -- lifecycle --

    def start(self) -> GraphStub:
        """Make a CA and a certificate for 127.0.0.1/localhost, bind a random port and
        serve in a daemon thread."""
        import trustme  # test-only dependency

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self._dir = tempfile.mkdtemp(prefix="graph-stub-")
        ca.cert_pem.write_to_path(str(Path(self._dir) / "ca.pem"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        server = _TLSServer(("127.0.0.1", 0), _Handler)
        server.ssl_context, server.stub = context, self
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"graph-stub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and delete the CA bundle."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> GraphStub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def authority_host(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}{GRAPH_PREFIX}"

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM file with the stub's CA certificate."""
        return str(Path(self._dir) / "ca.pem")

    def config(self) -> dict[str, str]:
        """The ``TENANTPILOT_GRAPH_*`` settings that point the provider at this stub."""
        return {
            "TENANTPILOT_GRAPH_AUTHORITY_HOST": self.authority_host,
            "TENANTPILOT_GRAPH_BASE_URL": self.base_url,
            "TENANTPILOT_GRAPH_CA_BUNDLE": self.ca_bundle,
        }

    @property
    def token_path(self) -> str:
        return f"/{self.tenant_guid}/oauth2/v2.0/token"

    # -- state --

    def add_policy(self, policy_type: str, display_name: str, odata_type: str | None = None, **settings) -> str:
        """Add a policy as Graph would hold it (id, timestamps, version); returns its id."""
        item = {"displayName": display_name, **settings}
        if odata_type:
            item["@odata.type"] = odata_type
        with self._lock:
            return self._create(policy_type, item)["id"]

    def _create(self, policy_type: str, body: dict) -> dict:
        now = _now()
        item = {"id": str(uuid.uuid4()), **{k: v for k, v in body.items() if k != "id"}, "createdDateTime": now}
        if policy_type == "conditional_access":
            item["modifiedDateTime"] = now
        else:
            item.update(lastModifiedDateTime=now, version=1)
        self.policies[policy_type][item["id"]] = item
        return item

    def policy(self, policy_type: str, policy_id: str) -> dict | None:
        """A copy of one stored policy (as Graph holds it), or None."""
        with self._lock:
            item = self.policies[policy_type].get(policy_id)
            return json.loads(json.dumps(item)) if item is not None else None

    def grant(self, *permissions: str, resource_id: str | None = None) -> None:
        """Assign application permissions to our app's service principal (on Microsoft
        Graph unless ``resource_id`` names another resource)."""
        with self._lock:
            for value in permissions:
                role_id = self.app_roles.setdefault(value, _role_id(value))
                self.app_role_assignments.append({
                    "id": secrets.token_urlsafe(16), "appRoleId": role_id, "principalId": self.our_sp_id,
                    "principalType": "ServicePrincipal", "resourceId": resource_id or self.graph_sp_id,
                    "resourceDisplayName": "Microsoft Graph" if resource_id is None else "Other API",
                    "createdDateTime": _now(),
                })

    def add_role_assignment(self, role: str, principal_id: str | None = None) -> str:
        """Add a directory role assignment; returns the principal id."""
        principal_id = principal_id or str(uuid.uuid4())
        definition_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"role:{role}"))
        with self._lock:
            self.role_assignments.append({
                "id": secrets.token_urlsafe(16), "principalId": principal_id, "directoryScopeId": "/",
                "roleDefinitionId": definition_id,
                "roleDefinition": {"id": definition_id, "displayName": role, "isBuiltIn": True},
            })
        return principal_id

    def revoke_tokens(self) -> None:
        """Make every issued token invalid (Graph then answers 401)."""
        with self._lock:
            self._valid_tokens.clear()

    def fail(self, path: str | None, status: int | None = 503, *, method: str | None = None, times: int = 1,
             headers: dict[str, str] | None = None, body: Any = None, delay: float = 0.0) -> Fault:
        """Inject a fault for the next ``times`` matching requests (see ``Fault``)."""
        if body is None and status is not None and status >= 400:
            body = {"error": {"code": f"Stub{status}", "message": f"{FAULT_BODY_MARKER}: injected failure"}}
        fault = Fault(path=path, status=status, method=method, times=times, headers=dict(headers or {}),
                      body=body, delay=delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def requests(self, method: str | None = None, path: str | None = None, graph: bool | None = None) -> list[LoggedRequest]:
        """Logged requests, filtered by method, exact path and/or Graph-ness."""
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and (path is None or r.path == path) and (graph is None or r.graph == graph)]

    def token_requests(self) -> list[LoggedRequest]:
        return self.requests(method="POST", path=self.token_path)

    # -- serving --

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        raw_path, query = unquote(split.path), split.query
        length = int(h.headers.get("Content-Length") or 0)
        raw_body = h.rfile.read(length) if length else b""
        graph = raw_path == GRAPH_PREFIX or raw_path.startswith(GRAPH_PREFIX + "/")
        path = raw_path[len(GRAPH_PREFIX):] if graph else raw_path
        auth = h.headers.get("Authorization", "")
        with self._lock:
            authorized = auth.startswith("Bearer ") and auth[7:] in self._valid_tokens
            entry = LoggedRequest(h.command, path, query, time.monotonic(), authorized, graph)
            self.log.append(entry)
            fault = next((f for f in self._faults if f.matches(h.command, path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            entry.status = fault.status
            h.send_json(fault.status, fault.body, fault.headers)
            return
        try:
            status, body, headers = (self._graph(h.command, path, query, raw_body, entry) if graph
                                     else self._login(h.command, path, raw_body, entry))
        except Exception as exc:  # a stub bug should show up as a 500, not a hung client
            status, body, headers = 500, {"error": {"code": "StubError", "message": type(exc).__name__}}, {}
        entry.status = status
        h.send_json(status, body, headers)

    def _login(self, method: str, path: str, raw_body: bytes, entry: LoggedRequest):
        parts = path.strip("/").split("/")
        tenant = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        if tenant != self.tenant_guid:
            return 400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}, {}
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            base = f"{self.authority_host}/{tenant}"
            return 200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{self.authority_host}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            }, {}
        if method == "POST" and rest == "oauth2/v2.0/token":
            form = dict(parse_qsl(raw_body.decode("utf-8", "replace")))
            entry.client_id = form.get("client_id")
            if form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}, {}
            if form.get("client_id") != self.client_id:
                return 400, {"error": "unauthorized_client",
                             "error_description": "AADSTS700016: Application not found in the directory."}, {}
            if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
                return 401, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: Invalid client secret provided."}, {}
            if not str(form.get("scope", "")).endswith("/.default"):
                return 400, {"error": "invalid_scope"}, {}
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._valid_tokens.add(token)
                self.issued_tokens.append(token)
            return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime,
                         "ext_expires_in": self.token_lifetime, "access_token": token}, {}
        return 404, {"error": "not_found"}, {}

    def _graph(self, method: str, path: str, query: str, raw_body: bytes, entry: LoggedRequest):
        if not entry.authorized:
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}}, {}
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        body = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                return 400, {"error": {"code": "BadRequest", "message": "Invalid JSON."}}, {}
            entry.body = body
        with self._lock:
            for policy_type, collection in POLICY_COLLECTIONS.items():
                if path == collection:
                    if method == "GET":
                        return self._page(path, params, list(self.policies[policy_type].values()))
                    if method == "POST":
                        if not isinstance(body, dict) or not body.get("displayName"):
                            return 400, {"error": {"code": "BadRequest", "message": "displayName is required."}}, {}
                        return 201, self._create(policy_type, body), {}
                    return 405, {"error": {"code": "MethodNotAllowed"}}, {}
                if path.startswith(collection + "/"):
                    item = self.policies[policy_type].get(path[len(collection) + 1:])
                    if item is None:
                        return 404, {"error": {"code": "ResourceNotFound", "message": "Not found."}}, {}
                    if method == "GET":
                        return 200, {"@odata.context": f"{self.base_url}/$metadata#{collection}/$entity", **item}, {}
                    if method == "PATCH":
                        if not isinstance(body, dict):
                            return 400, {"error": {"code": "BadRequest", "message": "Body must be an object."}}, {}
                        item.update({k: v for k, v in body.items() if k not in ("id", "createdDateTime")})
                        if policy_type == "conditional_access":
                            item["modifiedDateTime"] = _now()
                        else:
                            item.update(lastModifiedDateTime=_now(), version=int(item.get("version", 0)) + 1)
                        return 204, None, {}
                    return 405, {"error": {"code": "MethodNotAllowed"}}, {}
            if method == "GET" and path == f"/servicePrincipals(appId='{self.client_id}')/appRoleAssignments":
                return self._page(path, params, list(self.app_role_assignments))
            if method == "GET" and path == f"/servicePrincipals(appId='{GRAPH_APP_ID}')":
                roles = [{"id": role_id, "value": value, "allowedMemberTypes": ["Application"], "isEnabled": True}
                         for value, role_id in self.app_roles.items()]
                return 200, {"id": self.graph_sp_id, "appId": GRAPH_APP_ID, "appRoles": roles}, {}
            if method == "GET" and path == "/roleManagement/directory/roleAssignments":
                expand = params.get("$expand") == "roleDefinition"
                items = [a if expand else {k: v for k, v in a.items() if k != "roleDefinition"}
                         for a in self.role_assignments]
                return self._page(path, params, items)
        return 404, {"error": {"code": "Request_ResourceNotFound", "message": "Unknown path."}}, {}

    def _page(self, path: str, params: dict[str, str], items: list[dict]):
        start = int(params.get("$skiptoken") or 0)
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/$metadata#stub",
                                "value": items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            rest = {k: v for k, v in params.items() if k != "$skiptoken"}
            rest["$skiptoken"] = str(start + self.page_size)
            body["@odata.nextLink"] = f"{self.base_url}{path}?{urlencode(rest, safe='$')}"
        return 200, body, {}


def free_port() -> int:
    """A local port nothing listens on (for "connection refused" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
