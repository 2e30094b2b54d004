"""A real RQ worker process for multi-process tests: builds the same app as the test
(config passed as JSON in TP_TEST_CONFIG) with the test plugins, then works."""
import json
import os
import sys

from tenantpilot.app import create_app
from tenantpilot.queue import make_worker

from tests.support import fanout_plugin, group_plugin


def main():
    config = json.loads(os.environ["TP_TEST_CONFIG"])
    app = create_app(config, plugins=[fanout_plugin, group_plugin])
    worker = make_worker(app)
    worker.work(burst="--burst" in sys.argv, logging_level="WARNING")


if __name__ == "__main__":
    main()
