"""Joining: check the host, pin the CA, make keys locally, ask the controller to sign."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import httpx

from atwill.hostlib.overlay.wireguard import generate_keypair

from .. import pki
from . import prereqs
from .client import ClusterError, check, client, tls_context
from .config import AgentConfig, write_private
from .inventory import collect
from .storage.node import join_inventory, storage_problem


class JoinError(Exception):
    """The join could not be done; the message says why and what to do."""


def fetch_ca(url: str, expected_hash: str) -> bytes:
    """The controller's CA, accepted only if its sha256 matches the pin."""
    try:
        resp = httpx.get(f"{url}/cluster/v1/ca", verify=False, timeout=30)  # noqa: S501
    except httpx.HTTPError as err:
        raise JoinError(f"cannot reach the controller at {url}: {err}") from None
    if resp.status_code != 200:
        raise JoinError(f"{url} did not serve a cluster CA (HTTP {resp.status_code}); "
                        "is this an atwill controller?")
    try:
        actual = pki.ca_hash(resp.content)
    except ValueError:
        raise JoinError(f"{url} served something that is not a certificate") from None
    if actual != expected_hash.strip().lower():
        raise JoinError(
            f"the controller's CA does not match the pinned hash: expected {expected_hash}, "
            f"got {actual}. Either --ca-hash is wrong or something between this machine and "
            "the controller is impersonating it; nothing was changed.")
    return resp.content


def join(url: str, token: str, ca_hash: str, state_dir: Path, name: str | None = None,
         overlay_port: int = 51820, skip_prereqs: bool = False,
         aggregates: list[str] | None = None, storage: Path | None = None,
         storage_vg: str | None = None) -> AgentConfig:
    url = url.rstrip("/")
    if not url.startswith("https://"):
        raise JoinError("the controller URL must be https:// (nodes authenticate with mutual "
                        "TLS)")
    if not skip_prereqs:
        missing = prereqs.check()
        if missing:
            raise JoinError("this host is missing what a node needs:\n"
                            + prereqs.format_missing(missing))
    if storage_vg is not None and storage is None:
        storage = state_dir / "storage"  # an LVM node's working files (exports, cache)
    storage = storage.absolute() if storage is not None else None
    if storage is not None and (problem := storage_problem(storage, storage_vg)):
        raise JoinError(problem)
    if AgentConfig.joined(state_dir):
        raise JoinError(f"{state_dir} already holds a joined node; run 'atwill leave' first "
                        "or use another --state-dir")
    kept = [p.name for p in (state_dir / "instances").glob("*/spec.json")]
    if kept:
        # A new node would delete them as unwanted: the operator decides first.
        raise JoinError(f"{state_dir} keeps the disks of {len(kept)} instance(s) of a node "
                        "that left or was removed; delete them with 'atwill leave --purge' "
                        "(or move them away), or use another --state-dir")
    name = name or socket.gethostname().split(".")[0]
    ca_pem = fetch_ca(url, ca_hash)
    key_pem, csr_pem = pki.make_key_and_csr(name)
    wg_private, wg_public = generate_keypair()
    body = {"token": token, "name": name, "csr": csr_pem.decode(),
            "wireguard_public_key": wg_public, "overlay_port": overlay_port,
            "inventory": collect(state_dir / "instances",
                                 storage=join_inventory(storage, storage_vg)
                                 if storage else None), "aggregates": aggregates or []}
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca_file.write(ca_pem)
        ca_file.flush()
        context = tls_context(Path(ca_file.name))
    try:
        with client(url, context) as http:
            reply = check(http.post("/cluster/v1/join", json=body)).json()
    except ClusterError as err:
        raise JoinError(err.message) from None
    except httpx.HTTPError as err:
        raise JoinError(f"the join request to {url} failed: {err}") from None
    # Nothing is written on the node until the controller has accepted the join.
    write_private(state_dir / "pki" / "ca.pem", ca_pem)
    write_private(state_dir / "pki" / "node-key.pem", key_pem)
    write_private(state_dir / "pki" / "node.pem", reply["certificate"].encode())
    write_private(state_dir / "overlay" / "wg-private.key", (wg_private + "\n").encode())
    config = AgentConfig(state_dir=state_dir, controller_url=url, node_id=reply["node_id"],
                         name=reply["name"], overlay_port=overlay_port, storage_path=storage,
                         storage_vg=storage_vg)
    config.cache_desired(reply["desired"])
    config.save()
    return config
