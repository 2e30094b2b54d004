"""The Microsoft Graph provider client: platform verbs turned into Graph v1.0 calls.

- Token: OAuth client credentials through MSAL. One ``ConfidentialClientApplication`` per
  (settings, authority, client id, secret) lives in this process (``_APPS``), so its
  in-memory token cache serves every client built for the same app registration and a
  token is fetched only when the cached one is about to expire.
- HTTP: one ``requests`` session per settings (``_SESSIONS``), shared by MSAL and the
  Graph calls. Its adapter retries 429 and 5xx with exponential back-off, honouring
  ``Retry-After``; every request has connect/read timeouts.
- Errors become ``ProviderError`` with a short message: the HTTP status and what was
  asked (policy type/id) at most, never a response body, token, secret or payload.

Settings are read when a client is built, from the Flask config with an environment
fallback (see ``GraphSettings.load``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import msal
import requests
from flask import has_app_context
from msal.exceptions import MsalServiceError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from tenantpilot.api import PolicyRecord, ProviderConnectionInfo, ProviderError, RoleAssignment
from tenantpilot.sdk import setting

log = logging.getLogger("tenantpilot.graph")

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's own app id
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Platform policy type key -> (label, Graph v1.0 collection).
POLICY_TYPES: dict[str, tuple[str, str]] = {
    "device_configuration": ("Device configuration", "/deviceManagement/deviceConfigurations"),
    "compliance_policy": ("Compliance policy", "/deviceManagement/deviceCompliancePolicies"),
    "conditional_access": ("Conditional Access policy", "/identity/conditionalAccess/policies"),
}
POLICY_COLLECTIONS = {key: collection for key, (_, collection) in POLICY_TYPES.items()}

# Properties Graph sets itself: never part of the settable state we compare or send.
SERVER_MANAGED = frozenset({"id", "createdDateTime", "lastModifiedDateTime", "modifiedDateTime", "version"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_METHODS = frozenset({"GET", "PATCH", "POST"})
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After ends the call as "throttled" instead of blocking a worker
MAX_BACKOFF = 30.0
MAX_PAGES = 1000
MAX_CACHED_APPS = 1024

DEFAULTS = {
    "TENANTPILOT_GRAPH_AUTHORITY_HOST": "https://login.microsoftonline.com",
    "TENANTPILOT_GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0",
    "TENANTPILOT_GRAPH_CA_BUNDLE": None,
    "TENANTPILOT_GRAPH_TIMEOUT": 20.0,
    "TENANTPILOT_GRAPH_MAX_RETRIES": 4,
    "TENANTPILOT_GRAPH_BACKOFF": 0.5,
}
# OAuth error codes of the token endpoint that are not about our credentials.
TOKEN_ERROR_REASONS = {
    "invalid_scope": "misconfigured",
    "invalid_request": "misconfigured",
    "temporarily_unavailable": "throttled",
}


# --- Settings ------------------------------------------------------------------------

def _setting(name: str) -> Any:
    """The registered setting (plugin.py) in an app; outside one (the stub's own tools),
    the environment, then the default."""
    if has_app_context():
        return setting(name)
    value = os.environ.get(name)
    return value if value not in (None, "") else DEFAULTS[name]


def _https_url(name: str, value: Any) -> str:
    parts = urlsplit(str(value))
    if parts.scheme != "https" or not parts.hostname:
        raise ProviderError("misconfigured", f"{name} must be an https URL.")
    return str(value).rstrip("/")


@dataclass(frozen=True)
class GraphSettings:
    """Process-wide Graph settings (not per tenant). Hashable: it keys the caches."""

    authority_host: str = DEFAULTS["TENANTPILOT_GRAPH_AUTHORITY_HOST"]
    base_url: str = DEFAULTS["TENANTPILOT_GRAPH_BASE_URL"]
    ca_bundle: str | None = None
    timeout: float = 20.0
    max_retries: int = 4
    backoff: float = 0.5

    @classmethod
    def load(cls) -> GraphSettings:
        """Read ``TENANTPILOT_GRAPH_*`` from the app config, else the environment, else
        the defaults. Raises ProviderError("misconfigured") for unusable values."""
        try:
            timeout = float(_setting("TENANTPILOT_GRAPH_TIMEOUT"))
            max_retries = int(_setting("TENANTPILOT_GRAPH_MAX_RETRIES"))
            backoff = float(_setting("TENANTPILOT_GRAPH_BACKOFF"))
        except (TypeError, ValueError):
            raise ProviderError("misconfigured", "A TENANTPILOT_GRAPH_* number setting is not a number.") from None
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ProviderError("misconfigured", "TENANTPILOT_GRAPH_TIMEOUT must be positive; retries and back-off not negative.")
        ca_bundle = _setting("TENANTPILOT_GRAPH_CA_BUNDLE")
        if ca_bundle is not None and not os.path.isfile(str(ca_bundle)):
            raise ProviderError("misconfigured", "TENANTPILOT_GRAPH_CA_BUNDLE does not name a readable file.")
        return cls(
            authority_host=_https_url("TENANTPILOT_GRAPH_AUTHORITY_HOST", _setting("TENANTPILOT_GRAPH_AUTHORITY_HOST")),
            base_url=_https_url("TENANTPILOT_GRAPH_BASE_URL", _setting("TENANTPILOT_GRAPH_BASE_URL")),
            ca_bundle=str(ca_bundle) if ca_bundle is not None else None,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
        )

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def scope(self) -> str:
        """``<Graph origin>/.default``: all application permissions granted to the app.
        Following the base URL's host keeps national clouds working."""
        return f"{self.origin}/.default"


# --- HTTP ----------------------------------------------------------------------------

class GraphRetry(Retry):
    """urllib3 Retry with two Graph-specific limits:

    - a POST whose answer was lost (read timeout, reset) is not retried: the create may
      have happened, and a retry would create a duplicate policy;
    - a Retry-After longer than MAX_RETRY_AFTER ends the retries (the call then fails as
      "throttled") rather than parking a worker for that long."""

    def get_retry_after(self, response):
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None  # a malformed Retry-After falls back to the exponential back-off

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if error is not None and method == "POST" and self._is_read_error(error):
            raise error
        if response is not None and self.respect_retry_after_header:
            wait = self.get_retry_after(response)
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:.0f}s is too long"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


class GraphSession(requests.Session):
    """A session with the retrying adapter, the CA bundle and a default timeout (MSAL
    calls ``get``/``post`` without one)."""

    def __init__(self, settings: GraphSettings):
        super().__init__()
        self.verify = settings.ca_bundle or True
        self.default_timeout = (settings.timeout, settings.timeout)  # (connect, read)
        retry = GraphRetry(
            total=settings.max_retries,
            other=0,  # TLS verification and other non-network errors will not heal on a retry
            backoff_factor=settings.backoff,
            backoff_max=MAX_BACKOFF,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=RETRY_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,  # after the last retry we want the response, to map its status
            retry_after_max=Retry.DEFAULT_RETRY_AFTER_MAX,  # MAX_RETRY_AFTER applies in increment()
        )
        self.mount("https://", HTTPAdapter(max_retries=retry))
        self._last = threading.local()

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.default_timeout)
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session-level verify.
        kwargs.setdefault("verify", self.verify)
        self._last.status = None
        resp = super().request(method, url, **kwargs)
        self._last.status = resp.status_code
        return resp

    def last_status(self) -> int | None:
        """The HTTP status of this thread's last answer: MSAL's token result does not
        carry it, and a 429 from the sign-in service is "throttled", not a bad secret."""
        return getattr(self._last, "status", None)


_LOCK = threading.Lock()
_SESSIONS: dict[GraphSettings, GraphSession] = {}
_APPS: OrderedDict[tuple, msal.ConfidentialClientApplication] = OrderedDict()


def _session_for(settings: GraphSettings) -> GraphSession:
    with _LOCK:
        session = _SESSIONS.get(settings)
        if session is None:
            session = _SESSIONS[settings] = GraphSession(settings)
        return session


def clear_caches() -> None:
    """Forget every cached MSAL app (and its tokens) and close the sessions."""
    with _LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
        _APPS.clear()
    for session in sessions:
        session.close()


def _transport_error(exc: requests.RequestException, what: str) -> ProviderError:
    """Map a requests exception (after the retries) to a reason; the URL and the
    exception text stay out of the message."""
    reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
    if isinstance(exc, requests.Timeout) or isinstance(reason, ReadTimeoutError):
        return ProviderError("timeout", f"No answer in time while {what}.")
    if isinstance(exc, requests.exceptions.SSLError):
        return ProviderError("unavailable", f"TLS verification failed while {what}.")
    return ProviderError("unavailable", f"Could not connect while {what}.")


def _status_error(status: int, what: str) -> ProviderError:
    if status == 401:
        reason = "auth_failed"
    elif status == 403:
        reason = "forbidden"
    elif status == 404:
        reason = "not_found"
    elif status == 429:
        reason = "throttled"
    elif status >= 500:
        reason = "unavailable"
    else:
        reason = "invalid_payload"
    return ProviderError(reason, f"Microsoft Graph answered HTTP {status} while {what}.")


def settable_state(item: Mapping[str, Any]) -> dict[str, Any]:
    """A Graph object without what Graph manages itself: ``id``, timestamps, ``version``
    and OData annotations (``@odata.context``, ``@odata.etag``, ``x@odata.nextLink`` …).
    ``@odata.type`` (and ``x@odata.type``) stay: Graph needs the type to create a policy.
    Top level only: nested values are settable state as they are."""
    return {
        key: value for key, value in item.items()
        if key not in SERVER_MANAGED and not ("@odata." in key and not key.endswith("@odata.type"))
    }


def _short(value: str, limit: int = 80) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- The client ----------------------------------------------------------------------

class GraphClient:
    """``ProviderClient`` for one tenant's Microsoft Graph. Built by ``build_client``;
    usable outside an app context once built. Methods raise ProviderError."""

    def __init__(self, tenant_id: int, tenant_guid: str, client_id: str, secret: str, settings: GraphSettings):
        self.tenant_id = tenant_id
        self.tenant_guid = tenant_guid
        self.client_id = client_id
        self.settings = settings
        self._secret = secret  # only handed to MSAL; kept out of __repr__
        self._session = _session_for(settings)

    def __repr__(self) -> str:
        return (f"GraphClient(tenant_id={self.tenant_id!r}, tenant_guid={self.tenant_guid!r}, "
                f"client_id={self.client_id!r}, base_url={self.settings.base_url!r})")

    # -- token --

    @property
    def authority(self) -> str:
        return f"{self.settings.authority_host}/{self.tenant_guid}"

    def _app_key(self) -> tuple:
        # A digest, not the secret, so the cache keys never hold it; a rotated secret gets a new app.
        digest = hashlib.sha256(self._secret.encode()).hexdigest()
        return (self.settings, self.authority, self.client_id.lower(), digest)

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        key = self._app_key()
        with _LOCK:
            app = _APPS.get(key)
            if app is not None:
                _APPS.move_to_end(key)
                return app
        # Built outside the lock: the constructor fetches the OpenID configuration.
        try:
            app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._secret,
                authority=self.authority,
                http_client=self._session,
                # Our authority host may be a national cloud or the test stub: do not ask
                # login.microsoftonline.com whether it knows it.
                validate_authority=False,
                instance_discovery=False,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, "reading the sign-in configuration") from None
        except ValueError:  # MSAL: the tenant's OpenID configuration answered 4xx or was not JSON
            if self._session.last_status() == 429:
                raise ProviderError("throttled", "The sign-in service is still throttling.") from None
            raise ProviderError("misconfigured", "The sign-in service did not accept this directory (tenant) ID.") from None
        except MsalServiceError:
            raise ProviderError("unavailable", "The sign-in service failed while reading its configuration.") from None
        with _LOCK:
            app = _APPS.setdefault(key, app)
            _APPS.move_to_end(key)
            while len(_APPS) > MAX_CACHED_APPS:
                _APPS.popitem(last=False)
        return app

    def _token(self) -> str:
        app = self._msal_app()
        try:
            result = app.acquire_token_for_client(scopes=[self.settings.scope])
        except requests.RequestException as exc:
            raise _transport_error(exc, "requesting a token") from None
        except (MsalServiceError, ValueError):  # 5xx after the retries, or a body that is not JSON
            raise ProviderError("unavailable", "The sign-in service failed while issuing a token.") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if token:
            return token
        if self._session.last_status() == 429:
            raise ProviderError("throttled", "The sign-in service is still throttling token requests.")
        code = str(result.get("error", "")) if isinstance(result, dict) else ""
        code = code if re.match(r"^[a-z_]{1,40}$", code) else "unknown_error"
        log.warning("graph token refused", extra={"tenant_id": self.tenant_id, "oauth_error": code})
        reason = TOKEN_ERROR_REASONS.get(code, "auth_failed")
        raise ProviderError(reason, f"The sign-in service refused the app's credentials ({code}).")

    def _forget_token(self) -> None:
        with _LOCK:
            app = _APPS.get(self._app_key())
        if app is not None:
            app.remove_tokens_for_client()

    # -- HTTP --

    def _url(self, path: str) -> str:
        return self.settings.base_url + path

    def _request(self, method: str, url: str, what: str, body: Mapping[str, Any] | None = None,
                 missing_ok: bool = False) -> requests.Response | None:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        started = time.monotonic()
        try:
            resp = self._session.request(method, url, headers=headers, json=body)
        except requests.RequestException as exc:
            raise _transport_error(exc, what) from None
        log.debug("graph %s %s -> %s in %.0f ms", method, urlsplit(url).path, resp.status_code,
                  (time.monotonic() - started) * 1000, extra={"tenant_id": self.tenant_id})
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code == 401:
            self._forget_token()  # revoked or expired early: the next call fetches a new one
        if resp.status_code >= 400:
            raise _status_error(resp.status_code, what)
        return resp

    def _get_json(self, url: str, what: str, missing_ok: bool = False) -> dict | None:
        resp = self._request("GET", url, what, missing_ok=missing_ok)
        if resp is None:
            return None
        try:
            data = resp.json()
        except ValueError:
            raise ProviderError("unavailable", f"Microsoft Graph answered something that is not JSON while {what}.") from None
        if not isinstance(data, dict):
            raise ProviderError("unavailable", f"Microsoft Graph answered an unexpected shape while {what}.")
        return data

    def _get_all(self, path: str, what: str) -> list[dict]:
        """Every item of a collection, following ``@odata.nextLink`` until it is absent."""
        url, items = self._url(path), []
        for _ in range(MAX_PAGES):
            page = self._get_json(url, what)
            value = page.get("value")
            if not isinstance(value, list):
                raise ProviderError("unavailable", f"Microsoft Graph answered an unexpected shape while {what}.")
            items.extend(item for item in value if isinstance(item, dict))
            url = page.get("@odata.nextLink")
            if not url:
                return items
            parts = urlsplit(str(url))
            if f"{parts.scheme}://{parts.netloc}" != self.settings.origin:
                # Our bearer token must only ever go to the Graph host.
                raise ProviderError("unavailable", f"Microsoft Graph sent a paging link to another host while {what}.")
        raise ProviderError("unavailable", f"More than {MAX_PAGES} pages while {what}.")

    # -- platform verbs --

    def _collection(self, policy_type: str) -> str:
        try:
            return POLICY_COLLECTIONS[policy_type]
        except KeyError:
            raise ProviderError("unsupported", f"Microsoft Graph has no policy type {_short(policy_type, 40)!r}.") from None

    def _item_path(self, policy_type: str, policy_id: str) -> str:
        return f"{self._collection(policy_type)}/{quote(str(policy_id), safe='')}"

    def _record(self, policy_type: str, item: Mapping[str, Any]) -> PolicyRecord:
        return PolicyRecord(policy_type=policy_type, policy_id=str(item.get("id", "")),
                            name=str(item.get("displayName") or ""), payload=settable_state(item))

    def list_policies(self, policy_type: str) -> list[PolicyRecord]:
        """Every policy of that type (all pages), payloads reduced to settable state."""
        items = self._get_all(self._collection(policy_type), f"listing {policy_type} policies")
        return [self._record(policy_type, item) for item in items]

    def get_policy(self, policy_type: str, policy_id: str) -> PolicyRecord | None:
        """One policy, or None when Graph answers 404 (or the id is empty)."""
        path = self._item_path(policy_type, policy_id)
        if not policy_id:
            return None
        item = self._get_json(self._url(path), f"reading {policy_type} policy {_short(policy_id)}", missing_ok=True)
        return None if item is None else self._record(policy_type, item)

    def apply_policy(self, policy_type: str, policy_id: str, payload: Mapping[str, Any]) -> str:
        """Make the policy's settable state equal ``payload``: nothing when it already
        is (``"unchanged"``), else PATCH it, or POST it to the collection when the policy
        does not exist (Graph then assigns a new id). Server-managed keys in ``payload``
        are ignored. Graph PATCH merges: a property absent from ``payload`` is left as
        it is at Graph."""
        collection = self._collection(policy_type)
        wanted = settable_state(payload)
        current = self.get_policy(policy_type, policy_id)
        if current is not None and current.payload == wanted:
            return "unchanged"
        if current is not None:
            what = f"updating {policy_type} policy {_short(policy_id)}"
            self._request("PATCH", self._url(self._item_path(policy_type, policy_id)), what, body=wanted)
            log.info("graph policy updated", extra={"tenant_id": self.tenant_id, "policy_type": policy_type,
                                                    "policy_id": _short(policy_id)})
            return "applied"
        what = f"creating {policy_type} policy {_short(policy_id)}" if policy_id else f"creating a {policy_type} policy"
        resp = self._request("POST", self._url(collection), what, body=wanted)
        try:
            new_id = str(resp.json().get("id", ""))
        except (ValueError, AttributeError):
            new_id = ""
        log.info("graph policy created", extra={"tenant_id": self.tenant_id, "policy_type": policy_type,
                                                "policy_id": _short(policy_id), "new_policy_id": _short(new_id)})
        return "applied"

    def granted_permissions(self) -> list[str]:
        """Application permissions (Graph app roles) granted to our app in the tenant,
        e.g. ``Policy.Read.All``, sorted. Roles on other resources are not listed."""
        assignments = self._get_all(f"/servicePrincipals(appId='{self.client_id}')/appRoleAssignments",
                                    "reading the app's permission grants")
        graph_sp = self._get_json(self._url(f"/servicePrincipals(appId='{GRAPH_APP_ID}')?$select=id,appRoles"),
                                  "reading Microsoft Graph's permission list")
        roles = {r.get("id"): r.get("value") for r in graph_sp.get("appRoles") or [] if isinstance(r, dict)}
        graph_sp_id = graph_sp.get("id")
        return sorted({
            roles[a.get("appRoleId")] for a in assignments
            if roles.get(a.get("appRoleId")) and (graph_sp_id is None or a.get("resourceId") == graph_sp_id)
        })

    def directory_role_assignments(self) -> list[RoleAssignment]:
        """Directory role assignments with the role's display name. The principal's kind
        is not part of this call's answer (expanding it would cost a second expand), so
        ``principal_type`` is ``"unknown"``."""
        items = self._get_all("/roleManagement/directory/roleAssignments?$expand=roleDefinition",
                              "reading directory role assignments")
        result = []
        for item in items:
            definition = item.get("roleDefinition") if isinstance(item.get("roleDefinition"), dict) else {}
            result.append(RoleAssignment(
                role=str(definition.get("displayName") or item.get("roleDefinitionId") or ""),
                principal_id=str(item.get("principalId") or ""),
                principal_type="unknown",
            ))
        return sorted(result, key=lambda r: (r.role, r.principal_id))


def build_client(info: ProviderConnectionInfo) -> GraphClient:
    """The provider factory: check the connection's settings and secret, read the Graph
    settings (in the caller's app context) and return a client. Makes no request."""
    tenant_guid = str(info.settings.get("tenant_guid") or "").strip()
    client_id = str(info.settings.get("client_id") or "").strip()
    if not GUID_RE.match(tenant_guid) or not GUID_RE.match(client_id):
        raise ProviderError("misconfigured", "The connection needs a directory (tenant) ID and an application (client) ID, both GUIDs.")
    if not info.secret:
        raise ProviderError("misconfigured", "The connection has no client secret reference.")
    return GraphClient(info.tenant_id, tenant_guid, client_id, info.secret, GraphSettings.load())
