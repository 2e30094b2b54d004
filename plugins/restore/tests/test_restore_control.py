def test_restore_execute_control_is_registered_by_the_installed_plugin(app):
    registry = app.extensions["tenantpilot"].registry
    control = registry.control_keys["restore.execute"]
    assert control.label == "Restore execution" and control.scopes == ("global", "workspace")
    assert registry.owners[("control", "restore.execute")] == "restore"
