"""Structured logs: one JSON object per line (requests, jobs, errors)."""
from __future__ import annotations

import json
import logging
import sys

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the ``tenantpilot`` loggers, unless the host process has
    configured logging itself (a root handler: gunicorn's --log-config, pytest): then our
    records just propagate to it, so nothing is printed twice and nothing is hidden."""
    ours = logging.getLogger("tenantpilot")
    ours.setLevel(level)
    if logging.getLogger().handlers or any(isinstance(h.formatter, JsonFormatter) for h in ours.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    ours.addHandler(handler)
    ours.propagate = False  # the root has no handler: propagating would reach only lastResort
