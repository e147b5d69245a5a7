"""What a new cloud is given through its own API: the m1.* flavors and the guest image.

`atwill up` and the lab both seed with this (the networks `public`, `private` and
`router1` come from bootstrap, at `atwill init`). Idempotent: what exists is kept.

    python -m atwill.cloud_defaults STATE_DIR   # seed a running controller (the lab)
"""

from __future__ import annotations

import logging
import ssl
import sys
from pathlib import Path

import httpx

from . import config
from .config import Settings

log = logging.getLogger("atwill.defaults")
GUEST_IMAGE = "atwill-guest"
# The smaller flavors first, so the first server can boot at once (TCG is slow: tiny RAM).
FLAVORS = (("m1.tiny", 256, 1, 1), ("m1.small", 512, 5, 1), ("m1.medium", 1024, 10, 2),
           ("m1.large", 2048, 20, 2))


def client(conf: Settings, token: str | None = None) -> httpx.Client:
    """An HTTP client for the controller of `conf`, trusting its cluster CA."""
    verify = ssl.create_default_context(cafile=str(conf.path("pki", "ca.pem"))) \
        if conf.tls else False
    headers = {"X-Auth-Token": token} if token else {}
    return httpx.Client(base_url=conf.public_url, verify=verify, headers=headers,
                        timeout=120)


def admin_token(conf: Settings) -> str:
    """A project-scoped token of the bootstrap admin."""
    password = conf.path("admin-password").read_text().strip()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    with client(conf) as http:
        resp = http.post("/identity/v3/auth/tokens", json=body)
        resp.raise_for_status()
        return resp.headers["X-Subject-Token"]


def flavors(conf: Settings, token: str) -> list[str]:
    """Create whichever m1.* flavor is missing; returns the names made."""
    made = []
    with client(conf, token) as http:
        have = {f["name"] for f in http.get("/compute/v2.1/flavors",
                                            params={"is_public": "None"}).json()["flavors"]}
        for name, ram, disk, vcpus in FLAVORS:
            if name not in have:
                http.post("/compute/v2.1/flavors", json={"flavor": {
                    "name": name, "ram": ram, "disk": disk, "vcpus": vcpus}}
                ).raise_for_status()
                made.append(name)
    return made


def guest_image(conf: Settings, token: str) -> bool:
    """Upload the guest image (built the first time) unless an active one exists."""
    from .guest.build import build_image

    with client(conf, token) as http:
        found = http.get("/image/v2/images", params={"name": GUEST_IMAGE}).json()
        if any(i["status"] == "active" for i in found["images"]):
            return False
        log.info("building the guest image (first time: fetches Debian packages)")
        path = build_image().path
        image = http.post("/image/v2/images", json={
            "name": GUEST_IMAGE, "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"}).json()
        with open(path, "rb") as data:
            http.put(f"/image/v2/images/{image['id']}/file", content=data,
                     headers={"Content-Type": "application/octet-stream"}
                     ).raise_for_status()
        log.info("uploaded the guest image as %s", GUEST_IMAGE)
        return True


def seed(conf: Settings) -> list[str]:
    """Flavors and guest image on a running controller; says what was made."""
    token = admin_token(conf)
    made = [f"flavor {name}" for name in flavors(conf, token)]
    if guest_image(conf, token):
        made.append(f"image {GUEST_IMAGE}")
    return made


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m atwill.cloud_defaults STATE_DIR", file=sys.stderr)
        return 2
    try:
        made = seed(config.load(Path(argv[0])))
    except (OSError, httpx.HTTPError, KeyError, ValueError) as error:
        print(f"seeding the cloud's defaults failed: {error}", file=sys.stderr)
        return 1
    print("\n".join(made) or "nothing to add")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
