"""The `simulated` provider: deterministic fake tenant state in local tables."""
