"""lab.json: everything a lab created, written before each step so `down` can undo it.

The file records intent first (a namespace is recorded, then created), so a lab
whose `up` was killed half-way can still be taken down from its file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .processes import Process

STATE_FILE = "lab.json"


@dataclasses.dataclass
class Host:
    """One host of the lab: its namespace, WAN address, state directory and processes."""

    name: str
    role: str  # "controller", "node" or "database"
    namespace: str
    address: str  # CIDR on the lab WAN
    state_dir: str
    wan_veth: str  # the WAN-side end of its access link
    delay: str | None = None
    loss: str | None = None
    external_address: str | None = None  # CIDR on the internet segment (nodes, if any)
    processes: dict[str, Process] = dataclasses.field(default_factory=dict)

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["processes"] = {k: p.to_dict() for k, p in self.processes.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Host:
        procs = {k: Process.from_dict(p) for k, p in data.get("processes", {}).items()}
        return cls(**{**data, "processes": procs})


@dataclasses.dataclass
class LabState:
    """The whole lab as recorded in DIRECTORY/lab.json."""

    name: str
    directory: str
    subnet: str
    overlay: str = "wireguard"
    wan_namespace: str = ""
    inet_namespace: str = ""  # the "internet" segment, if the lab has one
    bridge: str = "br-wan"
    controller_url: str = ""
    # "sqlite" (in the controller's state directory) or "postgresql" (its own host, pg).
    database: str = "sqlite"
    database_url: str = ""
    # Set with several controllers: the catalog's host name, resolved by every lab host
    # to every controller (naming.cloud_host).
    cloud_host: str = ""
    owns_directory: bool = True
    # Parents of the directory that `up` made (deepest first); `down` removes them if empty.
    made_parents: list[str] = dataclasses.field(default_factory=list)
    # Set once the WAN is the userspace emulator instead of the bridge (no netem here).
    wan_emulated: bool = False
    wan_emulator: Process | None = None
    namespaces: list[str] = dataclasses.field(default_factory=list)
    hosts: dict[str, Host] = dataclasses.field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.directory) / STATE_FILE

    @property
    def controller(self) -> Host:
        return self.hosts["ctl"]

    def controllers(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "controller"]

    def nodes(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "node"]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hosts"] = {k: h.to_dict() for k, h in self.hosts.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        hosts = {k: Host.from_dict(h) for k, h in data.get("hosts", {}).items()}
        emulator = data.get("wan_emulator")
        return cls(**{**data, "hosts": hosts,
                      "wan_emulator": Process.from_dict(emulator) if emulator else None})

    def save(self) -> None:
        """Write atomically: a crash never leaves a half-written lab.json."""
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # 0600: it may hold the lab database's password.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, directory: Path) -> LabState:
        path = Path(directory) / STATE_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no lab at {directory} ({path} is missing)") from None
