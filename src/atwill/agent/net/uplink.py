"""The node's external uplink: the host bridge that carries the external network.

The data plane only uses `External.bridge` (masquerade to the node's address on it,
floating IPs as /32s on it, `default via gateway dev bridge` in router tables). This
module makes that bridge a configured thing:

- `bridge`: its name (required to have any external side at all);
- `address`: the node's own address/prefix on it, outside the floating-IP pool (so IPAM
  never hands it out) — masquerade uses it;
- `gateway`: the upstream router (default: the external subnet's `gateway_ip`);
- `create`: atwill creates the bridge (and deletes it on teardown); otherwise it must exist;
- `port`: an interface atwill enslaves to the bridge (the wire to the outside);
- `nat`: all-in-one: the node *is* the external network's gateway (its address defaults
  to the subnet's gateway_ip) and tenant traffic leaves by the host's own routes,
  masqueraded there (External.nat_to_host), so one machine needs no reconfiguration.

Settings come from `STATE_DIR/external.yaml` (keys as above) and the environment
(`ATWILL_EXTERNAL_BRIDGE`, `_ADDRESS`, `_GATEWAY`, `_CREATE`, `_PORT`, `_NAT`), the
environment winning. What was done is recorded in `NET_DIR/uplink.json`, so teardown
removes exactly that (an address we added, a bridge we created), nothing of the host's.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from atwill.agent.net import link
from atwill.agent.net.model import External
from atwill.hostlib.run import run

log = logging.getLogger(__name__)
CONFIG_FILE = "external.yaml"
STATE_FILE = "uplink.json"
ENV = "ATWILL_EXTERNAL_"
TRUE = ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class UplinkConfig:
    bridge: str | None = None
    address: str | None = None
    gateway: str | None = None
    create: bool = False
    port: str | None = None
    nat: bool = False

    @classmethod
    def load(cls, state_dir: Path, environ: Mapping[str, str] | None = None) -> UplinkConfig:
        """From STATE_DIR/external.yaml, overridden by ATWILL_EXTERNAL_* variables."""
        environ = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        path = state_dir / CONFIG_FILE
        if path.exists():
            data = yaml.safe_load(path.read_text()) or {}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV + f.name.upper())
            value = raw if raw not in (None, "") else data.get(f.name)
            if f.type in ("bool", bool):
                values[f.name] = str(value).lower() in TRUE if value is not None else False
            else:
                values[f.name] = str(value) if value not in (None, "") else None
        config = cls(**values)
        if config.address:
            ipaddress.ip_interface(config.address)  # a malformed address fails at start
        if config.nat and not config.create:
            # All-in-one: atwill makes the bridge (an existing one is used, and kept).
            config = dataclasses.replace(config, create=True)
        return config

    def save(self, state_dir: Path) -> None:
        """Write STATE_DIR/external.yaml (what the lab gives its nodes)."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}
        (state_dir / CONFIG_FILE).write_text(yaml.safe_dump(data))


class Uplink:
    """Converges the external bridge, its port and the node's address; undoes only its own."""

    def __init__(self, config: UplinkConfig, net_dir: Path) -> None:
        self.config = config
        self.state_path = net_dir / STATE_FILE

    @property
    def bridge(self) -> str | None:
        return self.config.bridge

    def address_for(self, external: External) -> str | None:
        """The node's address/prefix on the bridge (nat: the subnet's gateway)."""
        if self.config.address:
            return self.config.address
        if self.config.nat and external.gateway_ip:
            prefix = ipaddress.ip_network(external.cidr, strict=False).prefixlen
            return f"{external.gateway_ip}/{prefix}"
        return None

    def ensure(self, external: External) -> External:
        """Make the uplink exist as configured; the External the data plane should use."""
        cfg = self.config
        assert cfg.bridge is not None
        state = self._state()
        net_dir = self.state_path.parent
        net_dir.mkdir(parents=True, exist_ok=True)
        if cfg.create:
            kind = link.kind(cfg.bridge)
            if kind not in (None, "bridge"):
                raise RuntimeError(f"external bridge {cfg.bridge} exists and is a {kind}")
            if kind is None:
                state["created"] = cfg.bridge
                self._save(state)  # recorded first: a crash half-way is still torn down
                run(["ip", "link", "add", cfg.bridge, "type", "bridge", "stp_state", "0",
                     "forward_delay", "0"])
        elif not link.exists(cfg.bridge):
            raise RuntimeError(f"external bridge {cfg.bridge} does not exist (set "
                               f"{ENV}CREATE=1 to have atwill create it)")
        if cfg.create and state.get("created") == cfg.bridge:
            # Strict reverse-path checks do not know the tenant tables' routes.
            link.sysctl(f"net.ipv4.conf.{cfg.bridge}.rp_filter", "0")
        link.set_up(cfg.bridge)
        if cfg.port:
            if not link.exists(cfg.port):
                raise RuntimeError(f"external port {cfg.port} does not exist")
            if link.master(cfg.port) != cfg.bridge:
                link.set_master(cfg.port, cfg.bridge)
                state["port"] = cfg.port
            link.set_up(cfg.port)
        address = self.address_for(external)
        old = state.get("address")
        if old and old != address:
            link.del_address(cfg.bridge, old)
            state.pop("address")
        if address and address not in link.addresses(cfg.bridge):
            state.update(address=address, bridge=cfg.bridge)
            self._save(state)
            # With its prefix route: the host itself reaches the external segment.
            run(["ip", "addr", "add", address, "dev", cfg.bridge])
        self._save(state)
        gateway = external.gateway_ip if cfg.gateway is None else cfg.gateway
        if cfg.nat:
            return dataclasses.replace(external, bridge=cfg.bridge, gateway_ip=None,
                                       nat_to_host=True)
        return dataclasses.replace(external, bridge=cfg.bridge, gateway_ip=gateway)

    def teardown(self) -> None:
        """Remove what ensure added: our address, our port's enslavement, our bridge."""
        state = self._state()
        if not state:
            return
        created = state.get("created")
        if state.get("address") and state.get("bridge") != created:
            link.del_address(state["bridge"], state["address"])
        if state.get("port") and not created and link.exists(state["port"]):
            link.set_nomaster(state["port"])
        if created:
            link.delete(created)
        self.state_path.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        return self._state()

    def _state(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = json.loads(self.state_path.read_text())
            return result
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        tmp.replace(self.state_path)
