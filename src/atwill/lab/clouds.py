"""Two independent clouds in one lab shape: each a whole lab of its own (controller, nodes,
overlay, WAN), paired as peer clouds (CloudOne and CloudTwo) and joined only by one link
between their WANs, which `partition` cuts and `heal` restores.

The link is a veth pair between the two WAN namespaces, each end a port of its WAN's
bridge; the two controllers reach each other by an on-link route to the other WAN's
subnet (their nodes do not: a cloud's nodes talk to their own controller only). Both
ends live in lab namespaces and go with them at `down`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import naming
from .cluster import LabError
from .hosts import HOST_IF, wan
from .lab import DEFAULT_ROOT, Lab

LINK = "wan-peer"
NAMES = ("CloudOne", "CloudTwo")


def lab_names(name: str) -> tuple[str, str]:
    """The two labs' names: the base (at most 3 characters) and 1, 2."""
    base = naming.lab_name(name)[:naming.MAX_LAB_NAME - 1]
    return f"{base}1", f"{base}2"


class Clouds:
    """Two labs paired as peer clouds; `one` is CloudOne, `two` CloudTwo."""

    def __init__(self, name: str = "lab", directory: Path | str | None = None) -> None:
        root = Path(directory) if directory else DEFAULT_ROOT
        first, second = lab_names(name)
        self.one = Lab(first, root / first)
        self.two = Lab(second, root / second)

    @classmethod
    def load(cls, name: str = "lab", directory: Path | str | None = None) -> Clouds:
        clouds = cls(name, directory)
        clouds.one = Lab.load(clouds.one.name, clouds.one.directory)
        clouds.two = Lab.load(clouds.two.name, clouds.two.directory)
        return clouds

    def up(self, nodes: tuple[int, int] = (1, 1), timeout: float = 120,
           **options: Any) -> None:
        """Both clouds, the link between their WANs, and the pairing (both ways)."""
        if options.get("wan_delay") or options.get("wan_loss"):
            # A delayed WAN may become the userspace emulator, whose ports are no bridge's.
            raise LabError("--clouds takes no --wan-delay/--wan-loss (the clouds' link is "
                           "a bridge port)")
        if naming.subnet(self.one.name) == naming.subnet(self.two.name):
            raise LabError(f"labs {self.one.name} and {self.two.name} would share a WAN "
                           "subnet; choose another --name")
        built: list[Lab] = []
        try:
            for lab, count in ((self.one, nodes[0]), (self.two, nodes[1])):
                lab.up(count, timeout=timeout, **options)
                built.append(lab)
            self._link()
            self.pair()
        except BaseException:
            for lab in reversed(built):  # only what this call built: never another's lab
                lab.down()
            raise

    def _link(self) -> None:
        wan_one, wan_two = wan(self.one.state), wan(self.two.state)
        wan_one.add_veth(LINK, LINK, wan_two)
        for ns, lab in ((wan_one, self.one), (wan_two, self.two)):
            ns.attach(LINK, lab.state.bridge)
            ns.link_up(LINK)
        for lab, other in ((self.one, self.two), (self.two, self.one)):
            lab.namespace(naming.CONTROLLER).ip("route", "replace", other.state.subnet,
                                                "dev", HOST_IF)

    def pair(self) -> None:
        """CloudOne pairs with CloudTwo by a one-time peer token made at CloudTwo."""
        made = json.loads(self.two.atwill_ctl("peer", "token", "create", "--name", NAMES[0],
                                              "--json").stdout)
        self.one.atwill_ctl("peer", "add", NAMES[1], made["url"], "--ca-hash",
                            made["ca_hash"], "--token", made["token"])

    def partition(self) -> None:
        """Cut the clouds apart (each keeps its own WAN, controllers and nodes)."""
        wan(self.one.state).link_down(LINK)

    def heal(self) -> None:
        wan(self.one.state).link_up(LINK)

    def partitioned(self) -> bool:
        return not wan(self.one.state).link_is_up(LINK)

    def down(self) -> None:
        """Both labs, whatever was made of them (the link goes with their namespaces)."""
        errors = []
        for lab in (self.two, self.one):
            try:
                lab.down()
            except Exception as error:  # noqa: BLE001 - take both down, then report
                errors.append(f"{lab.name}: {error}")
        if errors:
            raise LabError("; ".join(errors))
