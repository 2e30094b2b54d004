"""Pipeline canary: a runbook that proves the fan-out path (queue → workers → ledger)
end to end after a deploy, without touching any tenant's data."""
__version__ = "0.1.0"
