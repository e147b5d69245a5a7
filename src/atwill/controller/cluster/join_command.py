"""The join command printed for a new token."""

from __future__ import annotations

from ...config import Settings
from ...pki import ca_hash


def join_details(settings: Settings, secret: str) -> dict[str, str]:
    pin = ca_hash(settings.path("pki", "ca.pem").read_bytes())
    url = settings.public_url
    return {"token": secret, "url": url, "ca_hash": pin,
            "command": f"atwill join {url} --token {secret} --ca-hash {pin}"}
