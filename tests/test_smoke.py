from tenantpilot.testing import login


def test_healthz_reports_database_and_queue(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok"
    assert resp.json["database"] == "ok"


def test_system_login_and_console(client, factory):
    factory.platform_user(email="ops@example.test", password="platform-pass-123")
    resp = login(client, "system", "ops@example.test", "platform-pass-123")
    assert resp.status_code == 302
    page = client.get("/system/")
    assert page.status_code == 200
    assert "Control tower" in page.get_data(as_text=True)
