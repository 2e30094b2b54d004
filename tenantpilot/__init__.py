"""TenantPilot Ops: the operations core. Plugins write ``from tenantpilot import hookimpl``."""
from .hookspecs import hookimpl

__all__ = ["hookimpl", "create_app"]


def create_app(config=None, plugins=None):
    from .app import create_app as _create_app

    return _create_app(config, plugins)
