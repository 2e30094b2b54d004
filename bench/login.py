"""Sign-in timing and session checks.

- POST /admin/login and /system/login with a known e-mail + wrong password vs an unknown
  e-mail: the medians must be close (an unknown e-mail is answered after the same hash
  work), else timing tells an attacker who has an account.
- The cost the server-side session check adds to a signed-in page (/admin/ GET).
- Revocation: after sign-out, is the old cookie refused on the very next request?

Each repetition (``--reps``, default 3; a fresh test client, the same users) takes N
sign-ins per case (``--n``, default 60) and PAGES signed-in GETs (``--pages``, default
200), signs out and replays the cookie. The table prints every figure as the median over
the repetitions and its spread (min–max): the per-repetition median, its p95, and the
unknown/known ratio. Checks, in every repetition: the ratio within 0.8–1.25 on both
planes, and the old cookie refused after sign-out.

The limits are raised for the run so that the limiter does not answer 429 mid-sample.
Run from the repository root with the venv active:
    python bench/login.py [--reps 3] [--n 60] [--pages 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

from _common import checks_verdict, percentile, print_header, setup, teardown

N = 60
PAGES = 200
CASES = ("known e-mail, wrong password", "unknown e-mail")


def spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def one_rep(app, rep: int, n: int, pages: int) -> dict:
    """One repetition: sign-in samples on both planes, signed-in page, revocation."""
    from tenantpilot.testing import csrf_from, login

    out: dict = {"signin": {}, "ratio": {}}
    client = app.test_client()
    for plane in ("admin", "system"):
        token = csrf_from(client.get(f"/{plane}/login").get_data(as_text=True))
        samples = {case: [] for case in CASES}
        for i in range(n):
            for case, email in ((CASES[0], "known@bench.test"), (CASES[1], f"nobody{rep}-{i}@bench.test")):
                t = time.perf_counter()
                r = client.post(f"/{plane}/login", data={"email": email, "password": "wrong-pass-123",
                                                         "csrf_token": token})
                samples[case].append((time.perf_counter() - t) * 1000)
                assert r.status_code == 422, r.status_code
        for case, values in samples.items():
            out["signin"][(plane, case)] = (statistics.median(values), percentile(values, 95))
        out["ratio"][plane] = out["signin"][(plane, CASES[1])][0] / out["signin"][(plane, CASES[0])][0]

    signed = app.test_client()
    assert login(signed, "admin", "known@bench.test", "bench-pass-123").status_code == 302
    page = []
    for _ in range(pages):
        t = time.perf_counter()
        assert signed.get("/admin/").status_code == 200
        page.append((time.perf_counter() - t) * 1000)
    out["page"] = (statistics.median(page), percentile(page, 95))

    cookie = signed.get_cookie("tp_admin_session", path="/admin").value
    token = csrf_from(signed.get("/admin/").get_data(as_text=True))
    t = time.perf_counter()
    signed.post("/admin/logout", data={"csrf_token": token})
    replay = app.test_client()
    replay.set_cookie("tp_admin_session", cookie, path="/admin")
    r = replay.get("/admin/")
    out["revoke_ms"] = (time.perf_counter() - t) * 1000
    out["refused"] = r.status_code == 302 and "/admin/login" in r.headers["Location"]
    out["revoke_status"] = "sign-in page" if out["refused"] else r.status_code
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--n", type=int, default=N, help=f"wrong-password sign-ins per case and plane (default {N})")
    parser.add_argument("--pages", type=int, default=PAGES, help=f"signed-in GETs per repetition (default {PAGES})")
    args = parser.parse_args()
    reps = max(1, args.reps)
    began = time.monotonic()
    print_header("bench/login.py — sign-in timing (known vs unknown e-mail) and session checks",
                 f"{args.n} wrong-password sign-ins per case, {args.pages} signed-in GETs; {reps} repetition(s); "
                 "Flask test client, PostgreSQL")
    app, _config, _tenants = setup(1, TENANTPILOT_LOGIN_RATE_LIMIT="100000 per minute",
                                   TENANTPILOT_LOGIN_IP_RATE_LIMIT="100000 per minute",
                                   TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT="100000 per minute")
    ok = True
    try:
        from tenantpilot.testing import Factory

        f = Factory(app)
        f.user(email="known@bench.test", password="bench-pass-123")
        f.platform_user(email="known@bench.test", password="bench-pass-123")
        results = []
        for rep in range(reps):
            r = one_rep(app, rep, args.n, args.pages)
            results.append(r)
            rep_ok = all(0.8 <= x <= 1.25 for x in r["ratio"].values()) and r["refused"]
            ok &= rep_ok
            print(f"rep {rep + 1}: " + "; ".join(
                f"{plane} known {r['signin'][(plane, CASES[0])][0]:.1f} / unknown "
                f"{r['signin'][(plane, CASES[1])][0]:.1f} ms (ratio {r['ratio'][plane]:.2f})"
                for plane in ("admin", "system"))
                  + f"; GET /admin/ {r['page'][0]:.2f} ms; revocation → {r['revoke_status']} "
                  f"({r['revoke_ms']:.1f} ms for both requests); {'OK' if rep_ok else 'FAILED'}", flush=True)

        print()
        print(f"median over {reps} repetition(s) (min–max)")
        print(f"{'plane':<8} {'case':<28} {'n':>4} {'median ms':>20} {'p95 ms':>20}")
        for plane in ("admin", "system"):
            for case in CASES:
                meds = [r["signin"][(plane, case)][0] for r in results]
                p95s = [r["signin"][(plane, case)][1] for r in results]
                print(f"{plane:<8} {case:<28} {args.n:>4} {spread(meds):>20} {spread(p95s):>20}")
            print(f"{plane:<8} unknown/known median ratio: {spread([r['ratio'][plane] for r in results], '.2f')} "
                  "(check: 0.80–1.25 in every repetition)")
        print(f"\nsigned-in GET /admin/ (session checked every request), {args.pages} per repetition: "
              f"median {spread([r['page'][0] for r in results], '.2f')} ms, "
              f"p95 {spread([r['page'][1] for r in results], '.2f')} ms")
        refused = sum(r["refused"] for r in results)
        print(f"revocation: sign-out, then the old cookie on the next request -> refused in {refused}/{reps} "
              f"repetition(s) ({spread([r['revoke_ms'] for r in results])} ms for both requests)")
    finally:
        teardown(app)
    return checks_verdict(ok, began)


if __name__ == "__main__":
    raise SystemExit(main())
