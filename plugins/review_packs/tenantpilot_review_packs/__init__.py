"""Built-in TenantPilot plugin: review packs — request, generate (an operation run), signed
expiring downloads, reuse of identical packs, daily prune."""
