"""The cloud as `atwill apply` and `atwill export` reach it: the OpenStack APIs, through a
cloud of clouds.yaml, with a token and its catalog."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml

from ..core.errors import ApiError

# Appended to the catalog's URL of each service (atwill's catalog is unversioned for these).
VERSIONS = {"identity": "/v3", "network": "/v2.0", "image": "/v2", "compute": "",
            "block-storage": ""}
# Flavors with their description and extra specs, and extra specs checked (2.86).
COMPUTE_VERSION = "2.86"


class ApplyError(ApiError):
    """A request the cloud refused, said as method, path, status and its message."""

    status = 400
    title = "Bad Request"


def clouds_files(state_dir: Path | None) -> list[Path]:
    """Where clouds.yaml is looked for, in openstacksdk's order, then atwill's state dir."""
    found = [Path(os.environ["OS_CLIENT_CONFIG_FILE"])] if os.environ.get(
        "OS_CLIENT_CONFIG_FILE") else []
    found += [Path("clouds.yaml"), Path.home() / ".config/openstack/clouds.yaml",
              Path("/etc/openstack/clouds.yaml")]
    return found + [(state_dir or Path("/var/lib/atwill")) / "clouds.yaml"]


def cloud_config(name: str, state_dir: Path | None) -> dict[str, Any]:
    for path in clouds_files(state_dir):
        if path.is_file():
            clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds") or {}
            if name in clouds:
                return clouds[name]
    raise ApplyError(f"no cloud named {name} in clouds.yaml (looked in "
                     f"{', '.join(map(str, clouds_files(state_dir)))})")


class Api:
    """Authenticated JSON requests to the services of one cloud."""

    def __init__(self, config: dict[str, Any]) -> None:
        auth = config.get("auth") or {}
        cacert = config.get("cacert")
        verify: Any = (ssl.create_default_context(cafile=cacert) if cacert
                       else config.get("verify", True))
        self.http = httpx.Client(verify=verify, timeout=60)
        self.region = config.get("region_name")
        # As openstacksdk: the cloud's interface (a per-controller cloud says internal).
        self.interface = str(config.get("interface") or "public").removesuffix("URL")
        self.token, self.urls = self._login(auth)

    def _login(self, auth: dict[str, Any]) -> tuple[str, dict[str, str]]:
        def domain(prefix: str) -> dict[str, str]:
            if auth.get(f"{prefix}_domain_id"):
                return {"id": auth[f"{prefix}_domain_id"]}
            return {"name": auth.get(f"{prefix}_domain_name", "Default")}

        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth.get("username"), "password": auth.get("password"),
            "domain": domain("user")}}}, "scope": {"project": {
                "name": auth.get("project_name"), "domain": domain("project")}}}}
        url = str(auth.get("auth_url", "")).rstrip("/")
        url = url if url.endswith("/v3") else url + "/v3"
        resp = self.http.post(url + "/auth/tokens", json=body)
        if resp.status_code != 201:
            raise ApplyError(f"authentication at {url} failed: {resp.status_code} "
                             f"{_message(resp)}")
        urls = {}
        for service in resp.json()["token"].get("catalog") or []:
            for end in service.get("endpoints") or []:
                if end.get("interface") == self.interface and (
                        not self.region or end.get("region") in (None, self.region)):
                    urls[service["type"]] = end["url"].rstrip("/")
        return resp.headers["X-Subject-Token"], urls

    def has(self, service: str) -> bool:
        return service in self.urls

    def call(self, method: str, service: str, path: str, body: Any = None,
             ok_missing: bool = False, **kwargs: Any) -> Any:
        if service not in self.urls:
            raise ApplyError(f"the cloud has no {service} service in its catalog")
        url = self.urls[service] + VERSIONS.get(service, "") + path
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        if service == "compute":
            headers["OpenStack-API-Version"] = f"compute {COMPUTE_VERSION}"
        resp = self.http.request(method, url, json=body, headers=headers, **kwargs)
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code >= 400:
            raise ApplyError(f"{method} {path}: {resp.status_code} {_message(resp)}")
        return resp.json() if resp.content and "json" in resp.headers.get(
            "content-type", "") else None

    def get(self, service: str, path: str, **kwargs: Any) -> Any:
        return self.call("GET", service, path, **kwargs)

    def close(self) -> None:
        self.http.close()


def _message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
        if "message" in data:
            return str(data["message"])
    return str(data)[:200]
