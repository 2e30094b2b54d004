"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""
from tenantpilot import create_app

app = create_app()
