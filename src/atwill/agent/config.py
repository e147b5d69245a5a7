"""The node's own files: agent.yaml, its key and certificates, the desired-state cache."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from ..core import controller_urls as urls_policy
from ..core.restart_notice import DEFAULT_SECONDS as DEFAULT_RESTART_NOTICE

DEFAULT_NODE_DIR = Path(os.environ.get("ATWILL_NODE_DIR", "/var/lib/atwill-node"))
_saving = threading.Lock()  # one agent.yaml writer at a time (the agent's threads)


@dataclasses.dataclass
class AgentConfig:
    state_dir: Path
    controller_url: str
    node_id: str
    name: str
    overlay_port: int = 51820
    # Where this node keeps volumes: set, it is a storage node (agent/storage).
    storage_path: Path | None = None
    # "VG/POOL": volumes are thin LVs of that pool (storage_path keeps the working files).
    storage_vg: str | None = None
    # Every controller of the cloud (the desired state's `controllers`; the one it joined
    # first until it hears of others): heartbeats and long-polls fail over between them.
    controller_urls: list[str] = dataclasses.field(default_factory=list)
    # Seconds a deliberately stopped agent says it will be back within (restart_notice.py).
    restart_notice: float = DEFAULT_RESTART_NOTICE

    def __post_init__(self) -> None:
        if self.storage_path is not None:
            self.storage_path = Path(self.storage_path)
        self.controller_urls = _urls([*self.controller_urls]) or [self.controller_url]

    @property
    def ca(self) -> Path:
        return self.state_dir / "pki" / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.state_dir / "pki" / "node.pem"

    @property
    def key(self) -> Path:
        return self.state_dir / "pki" / "node-key.pem"

    @property
    def overlay_dir(self) -> Path:
        return self.state_dir / "overlay"

    @property
    def desired_cache(self) -> Path:
        return self.state_dir / "desired.json"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "agent.pid"

    @property
    def instances_dir(self) -> Path:
        return self.state_dir / "instances"

    @property
    def removed_marker(self) -> Path:
        """Written when the controller said this node was removed: the agent will not run."""
        return self.state_dir / "removed.json"

    def save(self) -> None:
        data = {"controller_url": self.controller_url, "node_id": self.node_id,
                "name": self.name, "overlay_port": self.overlay_port,
                "controller_urls": self.controller_urls}
        if self.storage_path is not None:
            data["storage_path"] = str(self.storage_path)
        if self.storage_vg is not None:
            data["storage_vg"] = self.storage_vg
        if self.restart_notice != DEFAULT_RESTART_NOTICE:
            data["restart_notice"] = self.restart_notice
        with _saving:
            write_durable(self.state_dir / "agent.yaml", yaml.safe_dump(data).encode())

    @classmethod
    def load(cls, state_dir: Path) -> AgentConfig:
        path = state_dir / "agent.yaml"
        if not path.exists():
            raise FileNotFoundError(f"{state_dir} holds no joined node (no agent.yaml); "
                                    "run 'atwill join' first")
        data = yaml.safe_load(path.read_text())
        return cls(state_dir=state_dir, **data)

    @staticmethod
    def joined(state_dir: Path) -> bool:
        return (state_dir / "agent.yaml").exists()

    def cached_desired(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.desired_cache.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def cache_desired(self, desired: dict[str, Any]) -> None:
        write_private(self.desired_cache, json.dumps(desired).encode())
        self.learn_controllers(desired.get("controllers"))

    def learn_controllers(self, urls: Any) -> bool:
        """Keep the controllers a desired state lists (saved when they changed). An answer
        without any (an older controller), an empty list, or one that is too long or
        holds anything but https URLs (core/controller_urls.accepted) keeps what the
        node knew: the node is never left without a controller."""
        listed = urls_policy.accepted(urls)
        if not listed or listed == self.controller_urls:
            return False
        self.controller_urls = listed
        if self.joined(self.state_dir):  # at join, save() follows
            self.save()
        return True


def _urls(urls: list[Any]) -> list[str]:
    """https:// URLs, without trailing slashes or repeats, in their order."""
    seen: list[str] = []
    for url in urls:
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            url = url.rstrip("/")
            if url not in seen:
                seen.append(url)
    return seen


def write_durable(path: Path, data: bytes) -> None:
    """Replace a file readable by root only, atomically and durably: a reader (or a crash)
    sees the old file or the new one whole, never a mix, even with two writers."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by root only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)
