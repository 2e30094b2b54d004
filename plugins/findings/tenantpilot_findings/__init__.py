"""Findings: the tenant findings model and page, and the "Findings lifecycle backfill"
runbook that repairs legacy findings (SPEC 3, 5)."""
__version__ = "0.1.0"
