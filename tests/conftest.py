pytest_plugins = ["tenantpilot.testing"]
