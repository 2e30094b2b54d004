"""Sign-in timing and session checks.

- POST /admin/login and /system/login with a known e-mail + wrong password vs an unknown
  e-mail: the medians must be close (an unknown e-mail is answered after the same hash
  work), else timing tells an attacker who has an account.
- The cost the server-side session check adds to a signed-in page (/admin/ GET).
- Revocation: after sign-out, is the old cookie refused on the very next request?

The limits are raised for the run so that the limiter does not answer 429 mid-sample.
Run from the repository root with the venv active:  python bench/login.py
"""
from __future__ import annotations

import statistics
import time

from _common import checks_verdict, percentile, print_header, setup, teardown

N = 60


def main() -> int:
    began = time.monotonic()
    print_header("bench/login.py — sign-in timing (known vs unknown e-mail) and session checks",
                 f"{N} wrong-password sign-ins per case, Flask test client, PostgreSQL")
    app, _config, _tenants = setup(1, TENANTPILOT_LOGIN_RATE_LIMIT="100000 per minute",
                                   TENANTPILOT_LOGIN_IP_RATE_LIMIT="100000 per minute",
                                   TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT="100000 per minute")
    ok = True
    try:
        from tenantpilot.testing import Factory, csrf_from, login

        f = Factory(app)
        f.user(email="known@bench.test", password="bench-pass-123")
        f.platform_user(email="known@bench.test", password="bench-pass-123")
        client = app.test_client()
        print(f"{'plane':<8} {'case':<28} {'n':>4} {'median ms':>10} {'p95 ms':>8}")
        for plane in ("admin", "system"):
            token = csrf_from(client.get(f"/{plane}/login").get_data(as_text=True))
            samples = {"known e-mail, wrong password": [], "unknown e-mail": []}
            for i in range(N):
                for case, email in (("known e-mail, wrong password", "known@bench.test"),
                                    ("unknown e-mail", f"nobody{i}@bench.test")):
                    t = time.perf_counter()
                    r = client.post(f"/{plane}/login", data={"email": email, "password": "wrong-pass-123",
                                                             "csrf_token": token})
                    samples[case].append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 422, r.status_code
            for case, values in samples.items():
                print(f"{plane:<8} {case:<28} {len(values):>4} {statistics.median(values):>10.1f} "
                      f"{percentile(values, 95):>8.1f}")
            known, unknown = (statistics.median(v) for v in samples.values())
            ratio = unknown / known
            print(f"{plane:<8} unknown/known median ratio: {ratio:.2f}")
            ok &= 0.8 <= ratio <= 1.25

        signed = app.test_client()
        assert login(signed, "admin", "known@bench.test", "bench-pass-123").status_code == 302
        page = []
        for _ in range(200):
            t = time.perf_counter()
            assert signed.get("/admin/").status_code == 200
            page.append((time.perf_counter() - t) * 1000)
        print(f"\nsigned-in GET /admin/ (session checked every request): median {statistics.median(page):.2f} ms, "
              f"p95 {percentile(page, 95):.2f} ms")

        cookie = signed.get_cookie("tp_admin_session", path="/admin").value
        token = csrf_from(signed.get("/admin/").get_data(as_text=True))
        t = time.perf_counter()
        signed.post("/admin/logout", data={"csrf_token": token})
        replay = app.test_client()
        replay.set_cookie("tp_admin_session", cookie, path="/admin")
        r = replay.get("/admin/")
        took = (time.perf_counter() - t) * 1000
        refused = r.status_code == 302 and "/admin/login" in r.headers["Location"]
        print(f"revocation: sign-out, then the old cookie on the next request -> "
              f"{'sign-in page' if refused else r.status_code} ({took:.1f} ms for both requests)")
        ok &= refused
    finally:
        teardown(app)
    return checks_verdict(ok, began)


if __name__ == "__main__":
    raise SystemExit(main())
