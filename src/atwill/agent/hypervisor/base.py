"""What the agent needs of a hypervisor driver: QemuDriver is one, a test double another.

The instance manager talks to this interface only, so a second driver (or a double in a
unit test) needs no edit anywhere else. Snapshots and suspend stay QEMU's own (they speak
QMP and qemu-img), as the overlay drivers keep their own transport details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec
from atwill.core.volume_devices import Volume

State = Literal["running", "paused", "shutoff", "suspended", "missing", "error"]


class Hypervisor(Protocol):
    """Runs instances from specs; every method is idempotent and safe to retry."""

    instances_dir: Path

    def paths(self, uuid: str) -> InstancePaths:
        """Where the instance's files are."""

    def spec(self, uuid: str) -> InstanceSpec:
        """The spec the instance was last started with."""

    def pid(self, uuid: str) -> int | None:
        """The instance's process, or None when it does not run."""

    def state(self, uuid: str) -> State:
        """What the instance is doing now."""

    def list(self) -> dict[str, State]:
        """Every instance on this node and its state."""

    def uuids(self) -> list[str]:
        """Every instance on this node, without asking a running one anything."""

    def start(self, spec: InstanceSpec, timeout: float = 30.0) -> None:
        """Create what is missing and run the instance."""

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        """Power off (ACPI, then hard after timeout)."""

    def reboot(self, uuid: str, hard: bool = False, timeout: float = 60.0) -> None:
        """Soft or hard reboot."""

    def pause(self, uuid: str) -> None:
        """Freeze the vCPUs."""

    def unpause(self, uuid: str) -> None:
        """Let a paused guest run."""

    def suspend(self, uuid: str, timeout: float = 300.0) -> None:
        """Save the guest's state and end its process."""

    def resume(self, uuid: str, timeout: float = 120.0) -> None:
        """Run a suspended guest again from its saved state."""

    def delete(self, uuid: str, timeout: float = 5.0) -> None:
        """End the instance and remove every file of it."""

    def console(self, uuid: str, length: int | None = None) -> str:
        """The serial console log (its last length lines)."""

    def attach_volume(self, uuid: str, volume: Volume) -> None:
        """Hot-plug volume into a running instance, or keep it for the next start."""

    def detach_volume(self, uuid: str, volume_id: str) -> None:
        """Take the volume out of the instance (the guest must release it) and forget it."""

    def sync_volumes(self, uuid: str, wanted: list[Volume]) -> dict[str, str]:
        """Attach and detach until the instance has exactly wanted; each volume's outcome
        ("attached" or "error: …") by id, a volume detached not listed."""
