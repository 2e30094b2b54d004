"""The ceiling for bench/http_load.py: a bare Flask app answering one short text page, served by
the same gunicorn command as the product (not a benchmark itself)."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello"
