"""The Microsoft Graph client against the local HTTPS stub: real TLS, real MSAL, real
retries; nothing of the client is mocked."""
import logging
import time

import pytest

from graph_helpers import SECRET_ENV, app, build, connect, graph, other_app, stub, tenant_id  # noqa: F401 (fixtures)
from tenantpilot.api import PolicyRecord, ProviderConnectionInfo, ProviderError, RoleAssignment
from tenantpilot_graph.stub import FAULT_BODY_MARKER, free_port

DC = "/deviceManagement/deviceConfigurations"
WIN10 = "#microsoft.graph.windows10GeneralConfiguration"


def add_configs(stub, count):
    return [stub.add_policy("device_configuration", f"Baseline {i}", odata_type=WIN10,
                            passwordRequired=bool(i % 2), passwordMinimumLength=8 + i) for i in range(count)]


def test_token_is_fetched_once_and_reused(app, tenant_id, graph, stub):
    add_configs(stub, 2)
    graph.list_policies("device_configuration")
    graph.list_policies("compliance_policy")
    build(app, tenant_id).list_policies("conditional_access")  # a new client for the same app registration

    (token_request,) = stub.token_requests()
    assert token_request.client_id == stub.client_id and token_request.status == 200
    assert len(stub.requests(path=f"/{stub.tenant_guid}/v2.0/.well-known/openid-configuration")) == 1
    graph_calls = stub.requests(graph=True)
    assert len(graph_calls) == 3 and all(r.authorized for r in graph_calls)
    assert all(r.at > token_request.at for r in graph_calls)


def test_list_policies_follows_every_page_and_normalises(graph, stub):
    stub.page_size = 3
    ids = add_configs(stub, 7)

    records = graph.list_policies("device_configuration")

    assert len(stub.requests(method="GET", path=DC)) == 3  # 3 + 3 + 1
    assert [r.policy_id for r in records] == ids
    first = records[0]
    assert isinstance(first, PolicyRecord) and first.policy_type == "device_configuration"
    assert first.name == "Baseline 0"
    assert first.payload == {"displayName": "Baseline 0", "@odata.type": WIN10,
                             "passwordRequired": False, "passwordMinimumLength": 8}
    for record in records:
        assert not {"id", "createdDateTime", "lastModifiedDateTime", "version", "@odata.context"} & set(record.payload)


def test_get_policy_normalises_and_returns_none_when_missing(graph, stub):
    ca_id = stub.add_policy("conditional_access", "Require MFA", state="enabled",
                            conditions={"users": {"includeUsers": ["All"]}})
    record = graph.get_policy("conditional_access", ca_id)
    assert record.payload == {"displayName": "Require MFA", "state": "enabled",
                              "conditions": {"users": {"includeUsers": ["All"]}}}  # no modifiedDateTime, @odata.context
    assert graph.get_policy("conditional_access", "no-such-id") is None


def test_429_with_retry_after_is_retried_after_the_delay(graph, stub):
    add_configs(stub, 1)
    stub.fail(DC, 429, method="GET", headers={"Retry-After": "1"})

    assert len(graph.list_policies("device_configuration")) == 1

    first, second = stub.requests(method="GET", path=DC)
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0


def test_429_still_throttled_after_the_retries(make_app, tenant_id, stub):
    client = build(other_app(make_app, stub, TENANTPILOT_GRAPH_MAX_RETRIES=2), tenant_id)
    stub.fail(DC, 429, times=10)
    with pytest.raises(ProviderError) as err:
        client.list_policies("device_configuration")
    assert err.value.reason_code == "throttled"
    assert len(stub.requests(path=DC)) == 3  # the first try and two retries


def test_a_retry_after_too_long_to_wait_ends_as_throttled_at_once(graph, stub):
    stub.fail(DC, 429, times=10, headers={"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        graph.list_policies("device_configuration")
    assert err.value.reason_code == "throttled" and time.monotonic() - started < 5
    assert len(stub.requests(path=DC)) == 1


def test_5xx_is_retried_then_succeeds(graph, stub):
    add_configs(stub, 1)
    stub.fail(DC, 502, times=2)
    assert len(graph.list_policies("device_configuration")) == 1
    assert [r.status for r in stub.requests(path=DC)] == [502, 502, 200]


def test_5xx_until_the_retries_are_exhausted_is_unavailable(graph, stub):
    stub.fail(DC, 503, times=100)
    with pytest.raises(ProviderError) as err:
        graph.list_policies("device_configuration")
    assert err.value.reason_code == "unavailable"
    assert len(stub.requests(path=DC)) == 5  # the default 4 retries
    assert FAULT_BODY_MARKER not in err.value.message and "503" in err.value.message


def test_4xx_on_patch_is_invalid_payload_without_the_response_body(graph, stub):
    (policy_id,) = add_configs(stub, 1)
    stub.fail(f"{DC}/{policy_id}", 400, method="PATCH", times=5)
    current = graph.get_policy("device_configuration", policy_id)
    with pytest.raises(ProviderError) as err:
        graph.apply_policy("device_configuration", policy_id, {**current.payload, "passwordRequired": True})
    assert err.value.reason_code == "invalid_payload"
    assert FAULT_BODY_MARKER not in err.value.message and FAULT_BODY_MARKER not in str(err.value)
    assert "400" in err.value.message and policy_id in err.value.message
    assert "passwordRequired" not in err.value.message  # nor the payload
    assert len(stub.requests(method="PATCH")) == 1  # a 4xx is not retried


@pytest.mark.parametrize("status, reason", [(401, "auth_failed"), (403, "forbidden"), (409, "invalid_payload")])
def test_other_statuses_map_to_reasons(graph, stub, status, reason):
    stub.fail(DC, status)
    with pytest.raises(ProviderError) as err:
        graph.list_policies("device_configuration")
    assert err.value.reason_code == reason


def test_apply_unchanged_sends_no_write(graph, stub):
    (policy_id,) = add_configs(stub, 1)
    current = graph.get_policy("device_configuration", policy_id)
    assert graph.apply_policy("device_configuration", policy_id, current.payload) == "unchanged"
    assert not stub.requests(method="PATCH") and not stub.requests(method="POST", graph=True)


def test_apply_changed_patches_the_payload(graph, stub):
    (policy_id,) = add_configs(stub, 1)
    payload = {**graph.get_policy("device_configuration", policy_id).payload,
               "passwordRequired": True, "passwordMinimumLength": 14}

    assert graph.apply_policy("device_configuration", policy_id, payload) == "applied"

    (patch,) = stub.requests(method="PATCH")
    assert patch.path == f"{DC}/{policy_id}" and patch.body == payload
    assert graph.get_policy("device_configuration", policy_id).payload == payload
    assert stub.policy("device_configuration", policy_id)["version"] == 2
    assert graph.apply_policy("device_configuration", policy_id, payload) == "unchanged"


def test_apply_ignores_server_managed_keys_in_the_payload(graph, stub):
    (policy_id,) = add_configs(stub, 1)
    raw = stub.policy("device_configuration", policy_id)  # with id, timestamps and version
    assert graph.apply_policy("device_configuration", policy_id, raw) == "unchanged"


def test_apply_missing_policy_creates_it(graph, stub):
    payload = {"@odata.type": WIN10, "displayName": "Restored baseline", "passwordRequired": True}

    assert graph.apply_policy("device_configuration", "00000000-0000-0000-0000-00000000dead", payload) == "applied"

    assert [(r.method, r.status) for r in stub.requests(graph=True)] == [("GET", 404), ("POST", 201)]
    (post,) = stub.requests(method="POST", path=DC)
    assert post.body == payload
    (created,) = graph.list_policies("device_configuration")
    assert created.payload == payload and created.name == "Restored baseline"


def test_a_post_that_timed_out_is_not_retried(make_app, tenant_id, stub):
    client = build(other_app(make_app, stub, TENANTPILOT_GRAPH_TIMEOUT=0.5), tenant_id)
    stub.fail(DC, None, method="POST", times=5, delay=1.5)  # answers, but too late
    with pytest.raises(ProviderError) as err:
        client.apply_policy("device_configuration", "", {"@odata.type": WIN10, "displayName": "X"})
    assert err.value.reason_code == "timeout"
    assert len(stub.requests(method="POST", path=DC)) == 1  # a retry could create a duplicate


def test_a_read_timeout_is_retried_then_timeout(make_app, tenant_id, stub):
    client = build(other_app(make_app, stub, TENANTPILOT_GRAPH_TIMEOUT=0.3, TENANTPILOT_GRAPH_MAX_RETRIES=1), tenant_id)
    client.list_policies("compliance_policy")  # token first, so only the Graph GETs are slow
    stub.fail(DC, None, times=5, delay=1.0)
    with pytest.raises(ProviderError) as err:
        client.list_policies("device_configuration")
    assert err.value.reason_code == "timeout"
    assert len(stub.requests(path=DC)) == 2


def test_connection_refused_is_unavailable(make_app, tenant_id, stub):
    port = free_port()
    client = build(other_app(make_app, stub, TENANTPILOT_GRAPH_BASE_URL=f"https://127.0.0.1:{port}/v1.0",
                             TENANTPILOT_GRAPH_MAX_RETRIES=1), tenant_id)
    with pytest.raises(ProviderError) as err:
        client.list_policies("device_configuration")
    assert err.value.reason_code == "unavailable"
    assert str(port) not in err.value.message


def test_an_untrusted_certificate_is_unavailable_and_sends_nothing(make_app, tenant_id, stub, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(other_ca))
    client = build(other_app(make_app, stub, TENANTPILOT_GRAPH_CA_BUNDLE=str(other_ca)), tenant_id)
    with pytest.raises(ProviderError) as err:
        client.list_policies("device_configuration")
    assert err.value.reason_code == "unavailable" and "TLS" in err.value.message
    assert stub.log == []  # no request completed the handshake


def test_a_revoked_token_fails_once_then_a_new_token_is_fetched(graph, stub):
    graph.list_policies("device_configuration")
    stub.revoke_tokens()
    with pytest.raises(ProviderError) as err:
        graph.list_policies("device_configuration")
    assert err.value.reason_code == "auth_failed"
    graph.list_policies("device_configuration")
    assert len(stub.token_requests()) == 2


def test_granted_permissions_resolves_graph_app_roles(graph, stub):
    stub.grant("Policy.Read.All", "DeviceManagementConfiguration.ReadWrite.All", "Directory.Read.All")
    stub.grant("Mail.Send", resource_id="5e0f9e1a-0000-0000-0000-000000000001")  # another API: not listed
    stub.page_size = 2

    assert graph.granted_permissions() == [
        "DeviceManagementConfiguration.ReadWrite.All", "Directory.Read.All", "Policy.Read.All"]
    paths = [r.path for r in stub.requests(graph=True)]
    assert paths.count(f"/servicePrincipals(appId='{stub.client_id}')/appRoleAssignments") == 2
    (sp,) = stub.requests(path="/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')")
    assert "appRoles" in sp.query


def test_directory_role_assignments(graph, stub):
    stub.page_size = 1
    admin = stub.add_role_assignment("Global Administrator")
    reader = stub.add_role_assignment("Global Reader")

    assert graph.directory_role_assignments() == [
        RoleAssignment("Global Administrator", admin, "unknown"),
        RoleAssignment("Global Reader", reader, "unknown"),
    ]
    calls = stub.requests(path="/roleManagement/directory/roleAssignments")
    assert len(calls) == 2 and all("roleDefinition" in r.query for r in calls)


def test_a_bad_secret_is_auth_failed_and_reaches_no_graph_endpoint(app, tenant_id, stub, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    client = build(app, tenant_id)
    with pytest.raises(ProviderError) as err:
        client.list_policies("device_configuration")
    assert err.value.reason_code == "auth_failed" and "invalid_client" in err.value.message
    assert "not-the-secret" not in err.value.message
    assert [r.status for r in stub.token_requests()] == [401]
    assert stub.requests(graph=True) == []


@pytest.mark.parametrize("endpoint, status, reason", [
    ("openid", 503, "unavailable"),
    ("openid", 429, "throttled"),
    ("token", 503, "unavailable"),
    ("token", 429, "throttled"),
])
def test_sign_in_service_failures_after_the_retries(graph, stub, endpoint, status, reason):
    path = stub.token_path if endpoint == "token" else f"/{stub.tenant_guid}/v2.0/.well-known/openid-configuration"
    stub.fail(path, status, times=100)
    with pytest.raises(ProviderError) as err:
        graph.list_policies("device_configuration")
    assert err.value.reason_code == reason and FAULT_BODY_MARKER not in err.value.message
    assert len(stub.requests(path=path)) == 5  # retried like Graph calls
    assert stub.requests(graph=True) == []


def test_a_missing_secret_variable_is_misconfigured_and_sends_nothing(app, tenant_id, stub, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ProviderError) as err:
        build(app, tenant_id)
    assert err.value.reason_code == "misconfigured"
    assert stub.log == []


def test_an_unknown_directory_is_misconfigured(app, factory, stub):
    tenant = factory.tenant(factory.workspace())
    connect(app, tenant.id, {"tenant_guid": "11111111-2222-3333-4444-555555555555", "client_id": stub.client_id})
    with pytest.raises(ProviderError) as err:
        build(app, tenant.id).list_policies("device_configuration")
    assert err.value.reason_code == "misconfigured"
    assert stub.requests(graph=True) == []


def test_secret_and_token_never_reach_logs_errors_or_reprs(app, tenant_id, stub, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)  # root: urllib3, msal, requests
    caplog.set_level(logging.DEBUG, logger="tenantpilot")  # the app's logger tree does not propagate
    ours = logging.getLogger("tenantpilot")
    ours.addHandler(caplog.handler)
    errors = []
    try:
        client = build(app, tenant_id)
        (policy_id,) = add_configs(stub, 1)
        stub.grant("Policy.Read.All")
        stub.add_role_assignment("Global Reader")
        client.list_policies("device_configuration")
        client.apply_policy("device_configuration", policy_id, {"@odata.type": WIN10, "displayName": "Changed"})
        client.apply_policy("device_configuration", "", {"@odata.type": WIN10, "displayName": "New"})
        client.granted_permissions()
        client.directory_role_assignments()
        for method, status in (("GET", 500), ("PATCH", 400), ("GET", 401)):
            stub.fail(f"{DC}/{policy_id}", status, method=method, times=10)
            try:
                client.apply_policy("device_configuration", policy_id, {"displayName": "Other"})
            except ProviderError as exc:
                errors.append(exc)
            stub.clear_faults()
        client.list_policies("compliance_policy")  # a second token, after the 401 dropped the first
        monkeypatch.setenv(SECRET_ENV, stub.client_secret + "-wrong")
        try:
            build(app, tenant_id).list_policies("device_configuration")
        except ProviderError as exc:
            errors.append(exc)
    finally:
        ours.removeHandler(caplog.handler)

    secrets = [stub.client_secret, *stub.issued_tokens]
    assert len(stub.issued_tokens) >= 2 and len(errors) == 4
    assert {r.name.split(".")[0] for r in caplog.records} >= {"urllib3", "msal", "tenantpilot"}
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert not any(s in text for s in secrets), record.name
    for exc in errors:
        assert not any(s in exc.message or s in str(exc) or s in repr(exc) for s in secrets)
    info = ProviderConnectionInfo(tenant_id=tenant_id, tenant_external_id="x", provider="microsoft_graph",
                                  settings={}, secret=stub.client_secret)
    assert stub.client_secret not in repr(info) and stub.client_secret not in repr(client)
    out, err = capfd.readouterr()
    assert not any(s in out or s in err for s in secrets)
