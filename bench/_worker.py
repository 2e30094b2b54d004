"""Worker process for bench/fanout.py (not a benchmark itself).

    BENCH_WORKER_CONFIG=<app config JSON> python bench/_worker.py app|raw

``app``: rebuilds the benchmark app and runs the real AppWorker (make_worker) in burst
mode over the app's queues. ``raw``: a plain rq.SimpleWorker in burst mode over the queue
named in BENCH_WORKER_QUEUE. Either way it connects first, prints ``ready``, and waits
for a line on stdin before working, so process start-up is not part of the timing.
"""
from __future__ import annotations

import json
import os
import sys
import uuid


def main(mode: str) -> None:
    config = json.loads(os.environ["BENCH_WORKER_CONFIG"])
    prefix = config["TENANTPILOT_QUEUE_PREFIX"]
    if mode == "app":
        from sqlalchemy import text

        from tenantpilot.app import create_app
        from tenantpilot.extensions import db
        from tenantpilot.queue import make_worker

        app = create_app(config, plugins=None)
        with app.app_context():  # open the pool's first connection before the clock starts
            db.session.execute(text("SELECT 1"))
            db.session.remove()
        worker = make_worker(app)
    elif mode == "raw":
        import redis
        from rq import Queue, SimpleWorker

        conn = redis.Redis.from_url(config["REDIS_URL"])
        worker = SimpleWorker([Queue(os.environ["BENCH_WORKER_QUEUE"], connection=conn)], connection=conn,
                              name=f"{prefix}-raw-{uuid.uuid4().hex[:8]}")  # prefix: cleaned up afterwards
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    worker.connection.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    worker.work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    if "BENCH_WORKER_CONFIG" in os.environ and len(sys.argv) == 2:
        main(sys.argv[1])
    # else: run by `make bench` (every bench/*.py) — a helper, nothing to do standalone
