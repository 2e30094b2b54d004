"""Restore execution. Today it registers the `restore.execute` control key so operators
can pause restores before the restore wizard itself lands (issue: restore and providers)."""
__version__ = "0.1.0"
