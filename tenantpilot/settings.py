"""Plugin settings (``api.Setting``): one way to read them, with a clear error for a name
no plugin registered or a value that does not parse."""
from __future__ import annotations

import os
from typing import Any

from flask import current_app


def setting_value(name: str) -> Any:
    """The app config's value, else the environment's (parsed), else the default."""
    spec = current_app.extensions["tenantpilot"].registry.settings.get(name)
    if spec is None:
        raise KeyError(f"{name} is not a registered setting (register an api.Setting with "
                       "tenantpilot_register_settings)")
    value = current_app.config.get(name)
    if value not in (None, ""):
        return value
    raw = os.environ.get(name)
    if raw in (None, ""):
        return spec.default
    try:
        return spec.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={raw!r} is not a valid value: {exc}") from None
