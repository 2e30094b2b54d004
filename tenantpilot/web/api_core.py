"""The core's API blueprints of each plane (plugins add theirs through
``tenantpilot_register_api_blueprints``)."""
from __future__ import annotations


def blueprints(plane: str) -> list:
    if plane == "system":
        from . import api_approvals, api_audit, api_controls, api_runbooks, api_runs

        return [api_runbooks.bp, api_approvals.bp, api_runs.bp, api_controls.bp, api_audit.bp]
    from . import api_tenants

    return [api_tenants.bp]
