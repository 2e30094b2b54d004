"""rq-dashboard mounted at /system/ops/rq: guarded by platform capabilities, delete/empty
refused, every page and JSON endpoint working against RQ 3 with the app's own queues."""
import pytest

from tenantpilot.alerts import job_id_for
from tenantpilot.models import AlertDelivery
from tenantpilot.queue import all_queues, get_queue, make_worker
from tenantpilot.testing import login, signed_in
from tests.helpers import count
from tests.test_alerts import run_fanout
from tests.support import fanout_plugin

RQ = "/system/ops/rq"
XHR = {"X-Requested-With": "XMLHttpRequest"}
VIEW_ONLY = ["platform.access_system_panel", "platform.ops.view"]


@pytest.fixture
def app(make_app):
    # An unreachable webhook with no retries: its delivery job ends in the failed registry.
    return make_app(plugins=[fanout_plugin], ALERT_RETRY_INTERVALS="0",
                    ALERT_WEBHOOK_URL="http://127.0.0.1:9/unreachable")


@pytest.fixture
def people(factory):
    return {
        "ops": factory.platform_user(email="ops@example.test", password="ops-password-1"),
        "viewer": factory.platform_user(email="viewer@example.test", password="viewer-password-1",
                                        capabilities=VIEW_ONLY),
        "console": factory.platform_user(email="console@example.test", password="console-password-1",
                                         capabilities=["platform.access_system_panel", "platform.console.view",
                                                       "platform.runbooks.run"]),
    }


@pytest.fixture
def busy_queues(app, factory, drain, people):
    """Finished run batches, a failed delivery job, a scheduled and a queued job."""
    run_id = run_fanout(app, factory, drain, names=("fail-a", "ok-b"), user=people["ops"])
    with app.app_context():
        failed_job = job_id_for(next(iter(_webhook_delivery_ids(app, run_id))))
        q = get_queue("deliveries")
        from datetime import timedelta

        scheduled = q.enqueue_in(timedelta(hours=1), print, "later", job_id=f"{q.name}-scheduled")
        queued = q.enqueue(print, "queued", job_id=f"{q.name}-queued")
    return {"run_id": run_id, "failed_job": failed_job, "scheduled": scheduled.id, "queued": queued.id}


def _webhook_delivery_ids(app, run_id):
    from sqlalchemy import select

    from tenantpilot.extensions import db

    return db.session.scalars(select(AlertDelivery.id).where(AlertDelivery.run_id == run_id,
                                                             AlertDelivery.destination_type == "webhook")).all()


def test_signed_out_is_sent_to_the_system_login(client):
    for url in (f"{RQ}/", f"{RQ}/0/data/queues.json", f"{RQ}/static/css/main.css"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/system/login" in resp.headers["Location"], url


def test_platform_user_without_ops_view_gets_403(app, people):
    client = signed_in(app, "system", "console@example.test", "console-password-1")
    for url in (f"{RQ}/", f"{RQ}/0/view/workers", f"{RQ}/0/data/queues.json", f"{RQ}/static/css/main.css"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{RQ}/requeue/anything", headers=XHR).status_code == 403


def test_tenant_plane_session_does_not_open_the_dashboard(app, factory):
    ws = factory.workspace()
    factory.user(email="owner@example.test", password="owner-password-1", memberships=[(ws, "owner")])
    client = app.test_client()
    login(client, "admin", "owner@example.test", "owner-password-1")
    resp = client.get(f"{RQ}/")
    assert resp.status_code == 302 and "/system/login" in resp.headers["Location"]


def test_ops_viewer_sees_the_app_queues_on_every_page(app, people, busy_queues):
    client = signed_in(app, "system", "viewer@example.test", "viewer-password-1")
    names = [q.name for q in all_queues(app)]
    deliveries, runs = names
    page = client.get(f"{RQ}/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "RQ" in html and f"{RQ}/static/css/main.css" in html
    assert client.get(f"{RQ}/static/css/main.css").status_code == 200
    assert 'href="/system/ops/alerts"' in client.get("/system/ops/alerts").get_data(as_text=True)

    queues = client.get(f"{RQ}/0/data/queues.json").get_json()["queues"]
    by_name = {q["name"]: q for q in queues}
    assert set(names) <= set(by_name)
    assert by_name[deliveries]["failed_job_registry_count"] == 1
    assert by_name[deliveries]["scheduled_job_registry_count"] == 1
    assert by_name[deliveries]["count"] == 1
    assert by_name[runs]["finished_job_registry_count"] >= 1

    for url in (f"{RQ}/0/view/queues", f"{RQ}/0/view/workers", f"{RQ}/0/view/jobs",
                f"{RQ}/0/view/jobs/{deliveries}/failed/8/asc/1",
                f"{RQ}/0/view/job/{busy_queues['failed_job']}"):
        # /0/view/queues answers 308 → / (werkzeug: the "/" rule carries instance 0 as default)
        assert client.get(url, follow_redirects=True).status_code == 200, url
    for registry in ("queued", "failed", "scheduled", "finished", "started", "deferred", "canceled"):
        for queue in names:
            data = client.get(f"{RQ}/0/data/jobs/{queue}/{registry}/8/asc/1.json")
            assert data.status_code == 200, (queue, registry)
            assert data.get_json()["registry_name"] == registry
    failed = client.get(f"{RQ}/0/data/jobs/{deliveries}/failed/8/asc/1.json").get_json()["jobs"]
    assert [j["id"] for j in failed] == [busy_queues["failed_job"]]
    job = client.get(f"{RQ}/0/data/job/{busy_queues['failed_job']}.json").get_json()
    assert job["status"] == "failed" and job["origin"] == deliveries and "DeliveryFailed" in job["exc_info"]

    worker = make_worker(app, thread=True)
    worker.register_birth()
    try:
        workers = client.get(f"{RQ}/0/data/workers.json").get_json()["workers"]
    finally:
        worker.register_death()
    mine = [w for w in workers if w["name"] == worker.name]
    assert mine and set(mine[0]["queues"]) == set(names)


def test_only_instance_zero_exists(app, people):
    client = signed_in(app, "system", "viewer@example.test", "viewer-password-1")
    assert client.get(f"{RQ}/1/view/queues").status_code == 404


def test_delete_and_empty_are_refused_even_for_full_operators(app, people, busy_queues):
    client = signed_in(app, "system", "ops@example.test", "ops-password-1")
    deliveries = all_queues(app)[0]
    for url in (f"{RQ}/job/{busy_queues['queued']}/delete", f"{RQ}/queue/{deliveries.name}/queued/empty",
                f"{RQ}/queue/{deliveries.name}/failed/empty"):
        assert client.post(url, headers=XHR).status_code == 403, url
    assert deliveries.count == 1 and deliveries.failed_job_registry.count == 1
    assert deliveries.fetch_job(busy_queues["queued"]) is not None
    # The dashboard itself is configured not to offer them.
    assert app.config["RQ_DASHBOARD_DISABLE_DELETE"] is True


def test_requeue_needs_post_xhr_and_the_run_capability(app, people, busy_queues):
    deliveries = all_queues(app)[0]
    url = f"{RQ}/job/{busy_queues['failed_job']}/requeue"
    viewer = signed_in(app, "system", "viewer@example.test", "viewer-password-1")
    assert viewer.post(url, headers=XHR).status_code == 403  # ops.view alone is read-only
    ops = signed_in(app, "system", "ops@example.test", "ops-password-1")
    assert ops.get(f"{RQ}/requeue/{deliveries.name}").status_code == 405  # no GET side effects
    assert ops.post(url).status_code == 403  # a cross-site form cannot add the XHR header
    assert deliveries.failed_job_registry.count == 1
    # No CSRF token needed (blueprint exempt, operator-only): the XHR header suffices.
    resp = ops.post(url, headers=XHR)
    assert resp.status_code == 200 and resp.get_json()["status"] == "OK"
    assert deliveries.failed_job_registry.count == 0 and busy_queues["failed_job"] in deliveries.job_ids


def test_csrf_is_still_enforced_outside_the_dashboard(app, people):
    client = signed_in(app, "system", "ops@example.test", "ops-password-1")
    assert client.post("/system/logout").status_code == 400


def test_embedded_mode_dashboard_reads_the_in_process_queue(make_app, factory):
    app = make_app(REDIS_URL=None)
    assert app.extensions["tenantpilot"].embedded
    type(factory)(app).platform_user(email="viewer@example.test", password="viewer-password-1",
                                     capabilities=VIEW_ONLY)
    with app.app_context():
        get_queue("runs").enqueue(print, "x")
    client = signed_in(app, "system", "viewer@example.test", "viewer-password-1")
    assert client.get(f"{RQ}/").status_code == 200
    names = {q["name"] for q in client.get(f"{RQ}/0/data/queues.json").get_json()["queues"]}
    assert f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-runs" in names
    assert count(app, AlertDelivery) == 0
