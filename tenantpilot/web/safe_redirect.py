"""Only redirect to a local path inside the expected plane (no open redirects)."""
from urllib.parse import urlsplit


def safe_next(target: str | None, plane_prefix: str, default: str) -> str:
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(plane_prefix) or target.startswith("//"):
        return default
    return target
