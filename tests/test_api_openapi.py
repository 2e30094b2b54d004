"""The OpenAPI 3.1 documents (issue 15): one per plane, public, generated from the code;
every operation documents its problem answers and the bearer scheme; plugins' runbooks
and controls are reached through path parameters, so the document names none of them."""
import pytest

from tests.support import rename_plugin


@pytest.fixture
def app(make_app):
    return make_app(plugins=[rename_plugin])


@pytest.mark.parametrize("plane", ["system", "admin"])
def test_each_plane_serves_its_own_document(app, plane):
    resp = app.test_client().get(f"/{plane}/api/v1/openapi.json")  # no token needed: it holds no data
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.json
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == "v1"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "An API token of this plane."}
    assert doc["security"] == [{"bearer": []}]
    problem = doc["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(problem) == ["application/problem+json"]
    assert problem["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    operations = [(path, method, op) for path, item in doc["paths"].items()
                  for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")]
    assert operations
    other = "admin" if plane == "system" else "system"
    for path, method, op in operations:
        assert path.startswith(f"/{plane}/api/v1/") and not path.startswith(f"/{other}/")
        assert op["responses"]["default"] == {"$ref": "#/components/responses/DEFAULT_ERROR"}, (path, method)
        assert op.get("summary"), f"{method.upper()} {path} has no summary (the view's docstring)"
        assert any(code.startswith("2") for code in op["responses"]), (path, method)


def test_runbooks_are_path_parameters_not_paths(app):
    doc = app.test_client().get("/system/api/v1/openapi.json").json
    start = doc["paths"]["/system/api/v1/runbooks/{key}/start"]
    assert [p["name"] for p in start["parameters"]] == ["key"] and start["parameters"][0]["in"] == "path"
    body = start["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/StartRequest"}
    assert set(doc["components"]["schemas"]["StartRequest"]["required"]) == {
        "preflight_id", "confirmation", "reason_code"}
    # The installed runbook is in the app, not in the document.
    assert "tests.rename" not in str(doc) and "tests.rename" in app.extensions["tenantpilot"].registry.runbooks
