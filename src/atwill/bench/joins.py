"""Join latency in a lab: from the start of `atwill join` to schedulable, and to overlay ping.

A sample removes the node (`atwill node remove`), waits for its agent to clean up
and exit, makes a new token, then starts `atwill join` exactly as Lab.join does
and times it from that moment. "Schedulable" is read straight from the
controller's database (a node row `up`, enabled, with its inventory), polled
every POLL seconds; the overlay is timed by a ping of the node's overlay
address from the controller host, sent every PING_INTERVAL seconds from
before the join starts.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from .. import config
from ..controller.context import Controller
from ..controller.db.models import Node
from ..lab import Lab, LabError, commands, processes
from ..lab.netns import Namespace

POLL = 0.01
PING_INTERVAL = "0.02"
# A sample whose overlay does not answer by then is recorded as timed out (None), so one
# slow WireGuard handshake neither stops the run nor stretches it by minutes.
OVERLAY_TIMEOUT = 20.0


@dataclass(frozen=True)
class JoinSample:
    schedulable: float
    overlay: float | None  # None: no ping answer within OVERLAY_TIMEOUT


class Pinger:
    """A ping running in a namespace; records when the first reply arrives."""

    def __init__(self, ns: Namespace, address: str) -> None:
        self.first: float | None = None
        self.proc = subprocess.Popen(ns.argv(["ping", "-n", "-i", PING_INTERVAL, address]),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.first is None and " bytes from " in line:
                self.first = time.monotonic()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)


class JoinTimer:
    """Measures joins of one node of a lab against its controller's database."""

    def __init__(self, lab: Lab, name: str, timeout: float = 60,
                 overlay_timeout: float = OVERLAY_TIMEOUT) -> None:
        self.lab, self.name, self.timeout = lab, name, timeout
        self.overlay_timeout = overlay_timeout
        ctl = lab.state.controller
        self.controller = Controller.from_settings(config.load(Path(ctl.state_dir)))
        self.address = next(n["overlay_ip"] for n in lab.node_list() if n["name"] == name)

    def close(self) -> None:
        self.controller.db.dispose()

    def schedulable(self) -> bool:
        with self.controller.db.session() as session:
            node = session.scalar(select(Node).where(Node.name == self.name))
            return (node is not None and node.state == "up" and node.enabled
                    and bool(node.inventory) and node.vcpus > 0 and node.memory_mb > 0)

    def remove(self) -> None:
        """`atwill node remove`, then wait for the agent to clean up and exit."""
        agent = self.lab.host(self.name).processes.get("agent")
        self.lab.remove_node(self.name)
        if agent is not None and not processes.wait_gone([agent], self.timeout):
            raise LabError(f"the agent of {self.name} did not exit after its removal")

    def _spawn_join(self) -> None:
        """What Lab.join does, with the token made first so only `atwill join` is timed."""
        ctl, host = self.lab.state.controller, self.lab.host(self.name)
        token = json.loads(commands.run_in(self.lab.namespace(ctl.name),
                                           commands.token_create(ctl.state_dir)).stdout)
        argv = commands.join(token.get("url") or self.lab.url, token["token"],
                             token["ca_hash"], host.name, host.state_dir)
        pinger = Pinger(self.lab.namespace(ctl.name), self.address)
        self._pinger, self._started = pinger, time.monotonic()
        host.processes["agent"] = processes.spawn(self.lab.namespace(host.name), argv,
                                                  Path(host.state_dir) / "agent.log")
        self.lab.state.save()

    def join(self) -> JoinSample:
        """One timed join of a node that is not joined now."""
        self._spawn_join()
        schedulable: float | None = None
        try:
            while schedulable is None or self._pinger.first is None:
                elapsed = time.monotonic() - self._started
                if schedulable is None and self.schedulable():
                    schedulable = elapsed
                if schedulable is None and elapsed > self.timeout:
                    raise TimeoutError(f"{self.name} not schedulable after {self.timeout:g} s")
                if schedulable is not None and elapsed > self.overlay_timeout:
                    break
                if not self.lab.agent_alive(self.name):
                    raise LabError(f"the agent of {self.name} exited during its join; see "
                                   f"{self.lab.host(self.name).state_dir}/agent.log")
                time.sleep(POLL)
        finally:
            self._pinger.stop()
        first = self._pinger.first
        return JoinSample(schedulable, None if first is None else first - self._started)

    def rejoins(self, count: int) -> list[JoinSample]:
        """`count` remove-then-join cycles; the node is joined before and after."""
        samples = []
        for _ in range(count):
            self.remove()
            samples.append(self.join())
        return samples
