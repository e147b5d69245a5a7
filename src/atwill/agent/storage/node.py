"""The storage manager as the agent builds it: its node's certificate, images from the
controller (as instances fetch theirs), and its backend: sparse qcow2 files under the
storage path, or thin LVs of a volume group's thin pool when `storage_vg` is set
(`atwill join --storage-vg VG[/POOL]`), the storage path then keeping only the working
files (exports, image cache, uploads)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.client import tls_context
from atwill.agent.config import AgentConfig
from atwill.agent.storage.exports import DAEMON, Exports
from atwill.agent.storage.lvm_volumes import LvmStore, pool_problem
from atwill.agent.storage.reconcile import FetchImage, StorageManager, storage_inventory
from atwill.agent.storage.uploads import Controller
from atwill.agent.storage.volumes import VolumeStore
from atwill.core import lvm

TOOLS = ("qemu-img", DAEMON, "setpriv")


def storage_problem(path: Path, vg: str | None = None) -> str | None:
    """Why this host cannot keep volumes at path (or in the thin pool vg names, with its
    working files at path), if it cannot (checked at join)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"a storage node needs {', '.join(missing)} (Debian: apt install "
                "qemu-utils qemu-block-extra util-linux)")
    if path.exists() and not path.is_dir():
        return f"the storage path {path} exists and is not a directory"
    if vg is None:
        return None
    try:
        pool = lvm.ThinPool.parse(vg)
    except ValueError as err:
        return f"--storage-vg: {err}"
    missing = [tool for tool in lvm.TOOLS if shutil.which(tool) is None]
    if missing:
        return f"an LVM storage node needs {', '.join(missing)} (Debian: apt install lvm2)"
    if not Path("/dev/mapper/control").exists():
        return "an LVM storage node needs device-mapper (no /dev/mapper/control here)"
    return pool_problem(pool)


def join_inventory(path: Path, vg: str | None = None) -> dict[str, Any]:
    """The inventory's "storage" at join, before any volume was made."""
    if vg is not None:
        return LvmStore(lvm.ThinPool.parse(vg), path).inventory()
    return storage_inventory(path)


def volume_store(config: AgentConfig) -> LvmStore | None:
    """The LVM thin store of a node configured with a volume group, else None (files)."""
    if config.storage_vg is None or config.storage_path is None:
        return None
    files = VolumeStore(config.storage_path).volumes()
    if files:
        # Its volumes would not be found among the LVs and be made again, empty.
        raise RuntimeError(
            f"{config.storage_path} holds {len(files)} qcow2 volume(s) of the file backend, "
            f"and agent.yaml names the volume group {config.storage_vg}: a storage node "
            "keeps one backend (move the volumes away, or remove storage_vg)")
    return LvmStore(lvm.ThinPool.parse(config.storage_vg), config.storage_path)


def storage_manager(config: AgentConfig, base_url: Callable[[], str]) -> StorageManager | None:
    """The node's storage manager, or None when it is no storage node."""
    if config.storage_path is None:
        return None
    fetch = controller_fetch(config, base_url)
    uploader = Controller(config.node_id, base_url, config.ca, config.cert, config.key)
    return StorageManager(config.storage_path, config.ca, config.cert, config.key, fetch,
                          uploader=uploader, store=volume_store(config))


def controller_fetch(config: AgentConfig, base_url: Callable[[], str]) -> FetchImage:
    """Fetch an image as instances do: GET /cluster/v1/nodes/{me}/images/{id}, over mTLS."""
    def fetch(source: dict[str, Any], dest: Path) -> None:
        url = f"{base_url()}/cluster/v1/nodes/{config.node_id}/images/{source['id']}"
        context = tls_context(config.ca, config.cert, config.key)
        with httpx.stream("GET", url, verify=context, timeout=60) as resp:
            resp.raise_for_status()
            with open(dest, "wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
    return fetch


def make_storage_node(state_dir: Path, path: Path) -> None:
    """Give an already joined node (an older all-in-one cloud's) a storage path, once;
    its agent reports the storage in the inventory of its next heartbeat."""
    config = AgentConfig.load(state_dir)
    if config.storage_path is None:
        config.storage_path = path
        config.save()


def stop_exports(config: AgentConfig) -> None:
    """Stop every export of a node whose agent is stopped for good (its volumes stay)."""
    if config.storage_path is None:
        return
    exports = Exports(config.storage_path / ".exports", config.ca, config.cert, config.key)
    for volume, node in exports.records():
        exports.revoke(volume, node)
