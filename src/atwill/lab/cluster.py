"""The cloud inside a lab: the controller process, node agents, and the operator commands.

Lab inherits these methods; they use its hosts, `exec` and `wait_for`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from . import commands, hosts, processes
from .netns import Namespace
from .state import Host, LabState

T = TypeVar("T")
LOG_TAIL = 3000


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why."""


def _tail(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")[-LOG_TAIL:]
    except FileNotFoundError:
        return "(no log)"


class Cluster:
    """Controller and agent processes of a lab (mixed into Lab)."""

    state: LabState
    host: Callable[[str], Host]
    namespace: Callable[[str], Namespace]
    name: str

    def wait_for(self, predicate: Callable[[], T], timeout: float, what: str,
                 interval: float = 0.25) -> T:
        """Poll until `predicate()` is truthy and return it; TimeoutError names `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"lab {self.name}: timed out after {timeout:g}s "
                                   f"waiting for {what}")
            time.sleep(interval)

    @property
    def url(self) -> str:
        """The controller's URL on the lab WAN."""
        return self.state.controller_url

    @property
    def ca_file(self) -> str:
        return str(Path(self.state.controller.state_dir) / "pki" / "ca.pem")

    # controller --------------------------------------------------------------
    def _init_controller(self, ctl: Host, overlay: str) -> None:
        """`atwill init` for the controller host (it only writes files, so it runs here;
        on PostgreSQL it runs in the host, which reaches the database's host)."""
        state = self.state
        argv = commands.init(ctl.state_dir, ctl.ip, overlay, state.cloud_host or None)
        if state.database_url:
            env = {**os.environ, commands.DATABASE_URL_ENV: state.database_url}
            commands.run_in(hosts.namespace(ctl), argv, timeout=180, env=env)
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise commands.CommandError(argv, proc)
        self.state.controller_url = f"https://{ctl.ip}:{commands.CONTROLLER_PORT}"
        self.state.save()

    def seed_defaults(self) -> str:
        """The flavors and guest image `atwill up` gives, through the controller's API."""
        from ..guest.build import build_image

        build_image()  # here, where package mirrors are reachable; the seeder finds it cached
        ctl = self.state.controller
        return commands.run_in(hosts.namespace(ctl), commands.seed(ctl.state_dir),
                               timeout=300).stdout

    def controller_alive(self, name: str = "ctl") -> bool:
        proc = self.host(name).processes.get("controller")
        return proc is not None and processes.alive(proc)

    def controller_url_of(self, name: str = "ctl") -> str:
        """A controller's own URL (the first's is `url`)."""
        return f"https://{self.host(name).ip}:{commands.CONTROLLER_PORT}"

    def start_controller(self, timeout: float = 60, name: str = "ctl") -> None:
        """Start `atwill serve` in a controller host and wait until it answers HTTPS."""
        ctl = self.host(name)
        if self.controller_alive(name):
            raise LabError(f"the controller {name} is already running")
        log = Path(ctl.state_dir) / "controller.log"
        ctl.processes["controller"] = processes.spawn(
            hosts.namespace(ctl), commands.serve(ctl.state_dir), log)
        self.state.save()
        url = self.controller_url_of(name)

        def ready() -> bool:
            if not self.controller_alive(name):
                raise LabError(f"the controller exited; {log}:\n{_tail(str(log))}")
            ns = hosts.namespace(ctl)
            return commands.https_status(ns, url + "/identity/v3", self.ca_file) == 200

        self.wait_for(ready, timeout, "the controller to answer on " + url)

    def kill_controller(self, name: str = "ctl") -> None:
        """SIGKILL a controller process (a crash), by the PID the lab started."""
        processes.kill(self._process(self.host(name), "controller"))

    def stop_controller(self, name: str = "ctl") -> None:
        """SIGTERM a controller process and wait for it to exit."""
        processes.stop(self._process(self.host(name), "controller"))

    # agents ------------------------------------------------------------------
    def _process(self, host: Host, role: str) -> processes.Process:
        try:
            return host.processes[role]
        except KeyError:
            raise LabError(f"{host.name} has no {role} process recorded") from None

    def agent_alive(self, name: str) -> bool:
        proc = self.host(name).processes.get("agent")
        return proc is not None and processes.alive(proc)

    def _spawn_agent(self, host: Host, argv: list[str],
                     env: Mapping[str, str] | None = None) -> processes.Process:
        if self.agent_alive(host.name):
            raise LabError(f"the agent of {host.name} is already running")
        proc = processes.spawn(hosts.namespace(host), argv, Path(host.state_dir) / "agent.log",
                               env)
        host.processes["agent"] = proc
        self.state.save()
        return proc

    def join(self, name: str) -> processes.Process:
        """Join a node host as a real machine would: a one-use token, then `atwill join`."""
        host = self.host(name)
        token = json.loads(self._token_json())
        argv = commands.join(token.get("url") or self.url, token["token"], token["ca_hash"],
                             host.name, host.state_dir)
        return self._spawn_agent(host, argv)

    def join_settings(self, name: str | None = None) -> dict[str, str]:
        """ATWILL_JOIN_* for a new one-use token: what cloud-init writes on a new host."""
        token = json.loads(self._token_json())
        settings = {"ATWILL_JOIN_URL": token.get("url") or self.url,
                    "ATWILL_JOIN_TOKEN": token["token"], "ATWILL_JOIN_CA_HASH": token["ca_hash"]}
        # Lab hosts share the machine's host name, the default node name: name them.
        return {**settings, "ATWILL_JOIN_NAME": name} if name else settings

    def boot_agent(self, name: str, settings: Mapping[str, str],
                   argv: list[str] | None = None) -> processes.Process:
        """Start the host's agent as its boot would (`argv`, default `atwill agent`), with
        no ATWILL_* variables but `settings`: it joins by itself (autojoin)."""
        host = self.host(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATWILL_")}
        return self._spawn_agent(host, argv or commands.agent(host.state_dir),
                                 {**env, **settings})

    def _token_json(self) -> str:
        ctl = self.state.controller
        argv = commands.token_create(ctl.state_dir)
        return commands.run_in(hosts.namespace(ctl), argv).stdout

    def start_agent(self, name: str) -> processes.Process:
        """(Re)start `atwill agent` on a node that has joined."""
        host = self.host(name)
        return self._spawn_agent(host, commands.agent(host.state_dir))

    def kill_agent(self, name: str) -> None:
        """SIGKILL the agent process only (a crash; what it started keeps running)."""
        processes.kill(self._process(self.host(name), "agent"))

    def stop_agent(self, name: str) -> None:
        """SIGTERM the agent and wait for it to exit."""
        processes.stop(self._process(self.host(name), "agent"))

    def remove_node(self, name: str, force: bool = False) -> subprocess.CompletedProcess:
        """`atwill node remove` on the controller host; the host itself stays."""
        ctl = self.state.controller
        return commands.run_in(hosts.namespace(ctl),
                               commands.node_remove(name, ctl.state_dir, force))

    def node_list(self) -> list[dict[str, Any]]:
        """`atwill node list --json` on the controller host."""
        ctl = self.state.controller
        out = commands.run_in(hosts.namespace(ctl), commands.node_list(ctl.state_dir)).stdout
        return commands.parse(out) or []

    def node_states(self) -> dict[str, str]:
        return {node["name"]: node["state"] for node in self.node_list()}

    def wait_node_state(self, name: str, state: str, timeout: float = 60) -> None:
        """Wait until the controller reports the node in `state`; fail fast if its agent died."""
        host = self.host(name)

        def reached() -> bool:
            if state == "up" and not self.agent_alive(name):
                log = str(Path(host.state_dir) / "agent.log")
                raise LabError(f"the agent of {name} exited; {log}:\n{_tail(log)}")
            return self.node_states().get(name) == state

        self.wait_for(reached, timeout, f"{name} to be {state}")

    # status ------------------------------------------------------------------
    def status(self, with_nodes: bool = True) -> dict[str, Any]:
        """Hosts, namespaces, addresses, processes (alive?) and node states."""
        state = self.state
        out: dict[str, Any] = {
            "name": state.name, "directory": state.directory, "subnet": state.subnet,
            "overlay": state.overlay, "controller_url": state.controller_url,
            "database": state.database, "cloud_host": state.cloud_host or None,
            "wan_namespace": state.wan_namespace,
            "inet_namespace": state.inet_namespace or None,
            "wan": "emulator" if state.wan_emulated else "bridge", "hosts": {}}
        for host in state.hosts.values():
            out["hosts"][host.name] = {
                "role": host.role, "namespace": host.namespace, "address": host.address,
                "state_dir": host.state_dir, "delay": host.delay, "loss": host.loss,
                "external_address": host.external_address,
                "partitioned": hosts.is_partitioned(state, host),
                "processes": {role: {"pid": p.pid, "alive": processes.alive(p), "log": p.log}
                              for role, p in host.processes.items()}}
        if with_nodes:
            try:
                out["nodes"] = self.node_list()
            except (commands.CommandError, json.JSONDecodeError, OSError) as error:
                out["nodes_error"] = str(error)
        return out
