"""The Lab: a controller host and N node hosts, each a network namespace on one machine.

See hosts.py for the WAN emulation (netem per direction on each access link, or
the userspace emulator where the kernel has no netem).
Every step of `up` pushes its undo, so a failure leaves nothing behind; and
every resource is recorded in lab.json before it is made, so `down` works on a
lab whose `up` was killed half-way.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..agent.net.uplink import UplinkConfig
from . import bmc, commands, database, hosts, naming, processes, wanctl
from . import controllers as lab_controllers
from .cluster import Cluster, LabError
from .netns import Namespace, list_namespaces
from .revert import Reverter
from .state import STATE_FILE, Host, LabState

DEFAULT_ROOT = Path("/var/lib/atwill-lab")


class Lab(Cluster):
    """A lab by name and directory; `up` builds it, `load` finds an existing one."""

    def __init__(self, name: str = "lab", directory: Path | str | None = None) -> None:
        self.name = naming.lab_name(name)
        self.directory = Path(directory) if directory else DEFAULT_ROOT / self.name
        self._state: LabState | None = None
        self.wan_delay: str | None = None
        self.wan_loss: str | None = None
        # Nodes that join get their virtual BMC as fence device (fence_ipmilan), so a
        # killed node can be fenced with no configuration.
        self.fence_devices = True

    @classmethod
    def load(cls, name: str = "lab", directory: Path | str | None = None) -> Lab:
        """The lab recorded in DIRECTORY/lab.json (LabError if there is none)."""
        lab = cls(name, directory)
        try:
            lab._state = LabState.load(lab.directory)
        except FileNotFoundError as error:
            raise LabError(str(error)) from None
        ctl = lab._state.hosts.get(naming.CONTROLLER)
        lab.wan_delay, lab.wan_loss = (ctl.delay, ctl.loss) if ctl else (None, None)
        return lab

    @property
    def state(self) -> LabState:
        if self._state is None:
            raise LabError(f"lab {self.name!r} is not up")
        return self._state

    # building and tearing down ---------------------------------------------------
    def up(self, nodes: int = 1, wan_delay: str | None = None, wan_loss: str | None = None,
           overlay: str | None = None, join: bool = True, timeout: float = 60,
           internet: bool = False, bare: bool = False, controllers: int = 1,
           database: str = "sqlite") -> None:
        """Build the WAN, the controller host(s) and `nodes` node hosts, and join the nodes.

        internet: also an "internet" segment (namespace NAME-inet) that every node's
        external bridge joins, owning the public subnet's gateway (see hosts.create_inet).
        bare: without the flavors and guest image `atwill up` gives a cloud (the networks
        public, private and router1 are made by `atwill init` either way).
        controllers, database: several controllers on PostgreSQL in its own host
        (controllers.py); overlay defaults to wireguard, or none with several controllers.
        """
        overlay = overlay or ("none" if controllers > 1 else "wireguard")
        lab_controllers.check(controllers, database, overlay)
        self._refuse_if_taken()
        self.wan_delay, self.wan_loss = wan_delay, wan_loss
        with Reverter() as revert:
            owns, parents = self._make_directory(revert)
            self._state = LabState(
                name=self.name, directory=str(self.directory),
                subnet=str(naming.subnet(self.name)), overlay=overlay, owns_directory=owns,
                made_parents=parents, wan_namespace=naming.namespace(self.name, naming.WAN),
                database=database,
                cloud_host=naming.cloud_host(self.name) if controllers > 1 else "")
            self.state.save()
            hosts.create_wan(self.state, revert)
            if internet:
                hosts.create_inet(self.state, revert)
            if database == "postgresql":
                lab_controllers.up_database(self, revert, timeout)
            self._up_first_controller(overlay, controllers, revert, timeout)
            if not bare:
                self.seed_defaults()  # before ctl2: the image is uploaded through ctl
            for index in range(2, controllers + 1):
                lab_controllers.add_controller(self, index, revert, timeout)
            names = [self._new_node(revert) for _ in range(nodes)]
            if join:
                for name in names:
                    self.join(name)
                for name in names:
                    self.wait_node_state(name, "up", timeout)
                    self.register_fence_device(name)
            revert.success()

    def _up_first_controller(self, overlay: str, controllers: int, revert: Reverter,
                             timeout: float) -> None:
        ctl = hosts.new_host(self.state, naming.CONTROLLER, "controller",
                             naming.CONTROLLER_OCTET, self.wan_delay, self.wan_loss)
        hosts.create_host(self.state, ctl, revert)
        self._init_controller(ctl, overlay)
        if controllers > 1:
            lab_controllers.set_controller_urls(
                ctl.state_dir, lab_controllers.planned_urls(self.name, controllers))
        self.start_controller(timeout)

    def _refuse_if_taken(self) -> None:
        if (self.directory / STATE_FILE).exists():
            raise LabError(f"lab {self.name!r} already exists ({self.directory / STATE_FILE}); "
                           f"run 'atwill lab down --name {self.name}' first")
        prefix = naming.namespace(self.name, "")
        taken = sorted(n for n in list_namespaces() if n.startswith(prefix))
        if taken:
            raise LabError(f"namespaces of a lab named {self.name!r} already exist: "
                           f"{', '.join(taken)}; choose another --name")
        if self.directory.exists() and any(self.directory.iterdir()):
            raise LabError(f"{self.directory} exists and is not empty; choose another --dir")

    def _make_directory(self, revert: Reverter) -> tuple[bool, list[str]]:
        """Make the lab's directory; returns whether it is ours and the parents we made."""
        owns = not self.directory.exists()
        parents = [str(p) for p in self.directory.absolute().parents if not p.exists()]
        # 0711: the nodes' QEMU, dnsmasq and metadata users pass through to their files, as
        # through /var/lib on a real host; nothing here can be listed by them.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        revert.add(lambda: self._remove_directory(owns, parents))
        return owns, parents

    def _remove_directory(self, owns: bool, parents: list[str] | None = None) -> None:
        if owns:
            shutil.rmtree(self.directory, ignore_errors=True)
            for parent in parents or ():  # deepest first; another lab's stay
                try:
                    Path(parent).rmdir()
                except OSError:
                    break
            return
        for child in self.directory.iterdir():  # a directory we were given stays
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def down(self) -> None:
        """Remove everything the lab created (processes, namespaces, directory), only that."""
        if self._state is None:
            try:
                self._state = LabState.load(self.directory)
            except FileNotFoundError:
                return
        state = self.state
        wanctl.stop(state)  # first, so it does not chase the hosts' links as they go
        # The database last, and cleanly (its shared memory goes with a clean stop).
        for name in sorted(state.hosts, key=lambda n: state.hosts[n].role == "database"):
            if "postgres" in state.hosts[name].processes:
                database.stop(state.hosts[name].processes["postgres"])
            hosts.destroy_host(state, name)
        for ns in list(state.namespaces):
            hosts.delete_namespace(state, ns)
        self._remove_directory(state.owns_directory, state.made_parents)
        self._state = None

    # hosts -----------------------------------------------------------------------
    def host(self, name: str) -> Host:
        try:
            return self.state.hosts[name]
        except KeyError:
            raise LabError(f"lab {self.name!r} has no host {name!r} "
                           f"(hosts: {', '.join(self.state.hosts)})") from None

    def namespace(self, host: str) -> Namespace:
        return Namespace(self.host(host).namespace)

    def node_names(self) -> list[str]:
        return [h.name for h in self.state.nodes()]

    def _new_node(self, revert: Reverter, name: str | None = None) -> str:
        name = naming.host_name(name) if name else naming.next_node_name(set(self.state.hosts))
        used = {int(h.ip.rsplit(".", 1)[1]) for h in self.state.hosts.values()}
        host = hosts.new_host(self.state, name, "node", naming.next_octet(used),
                              self.wan_delay, self.wan_loss)
        hosts.create_host(self.state, host, revert)
        bmc.start(self, name)  # fencing: the node's virtual IPMI BMC, on the controller host
        revert.add(lambda: bmc.stop(self, name))
        Path(host.state_dir).mkdir(mode=0o700, exist_ok=True)
        if host.external_address:
            # The agent's uplink: it creates br-ext, bridges ext0 into it, takes the address.
            UplinkConfig(bridge=naming.NODE_EXTERNAL_BRIDGE, address=host.external_address,
                         create=True, port=naming.NODE_EXTERNAL_PORT
                         ).save(Path(host.state_dir))
        return name

    def add_node(self, name: str | None = None, join: bool = True,
                 timeout: float = 60) -> str:
        """A new node host; joined and `up` unless join=False. Returns its name."""
        with Reverter() as revert:
            name = self._new_node(revert, name)
            if join:
                self.join(name)
                self.wait_node_state(name, "up", timeout)
                self.register_fence_device(name)
            revert.success()
        return name

    def register_fence_device(self, name: str) -> None:
        """Make the node's virtual BMC its fence device (unless fence_devices is False)."""
        if self.fence_devices:
            octet = int(self.host(name).ip.rsplit(".", 1)[1])
            pairs = [f"{k}={v}" for k, v in bmc.fence_options(self.directory, octet).items()]
            self.atwill_ctl("node", "fence", "set", name, "--agent", "fence_ipmilan",
                            "--name", "bmc", *[a for p in pairs for a in ("--option", p)])

    def destroy_host(self, name: str) -> None:
        """Power the host off for good: its processes, namespace and state directory go."""
        bmc.stop(self, name)
        hosts.destroy_host(self.state, self.host(name).name)

    def kill_node(self, name: str) -> list[int]:
        """Hard power-off: SIGKILL every process in the host's namespace at once."""
        return processes.kill_namespace(self.namespace(name))

    def start_node(self, name: str) -> None:
        """Boot the host again after a kill: its agent starts."""
        self.start_agent(name)

    def partition(self, name: str) -> None:
        """Cut the host's WAN link."""
        hosts.partition(self.state, self.host(name))

    def heal(self, name: str) -> None:
        """Restore the host's WAN link."""
        hosts.heal(self.state, self.host(name))

    def set_wan(self, name: str, delay: str | None = None, loss: str | None = None) -> None:
        """Change one host's access-link delay/loss (None for both: a clean link)."""
        hosts.set_wan(self.state, self.host(name), delay, loss)

    # the internet -----------------------------------------------------------------
    @property
    def internet_ip(self) -> str:
        """The "rest of the world" address, beyond the public subnet's gateway."""
        self._inet()
        return naming.INTERNET_IP

    @property
    def internet_gateway(self) -> str:
        """The public subnet's gateway, owned by the internet namespace."""
        self._inet()
        return naming.INET_GATEWAY

    def _inet(self) -> Namespace:
        if not self.state.inet_namespace:
            raise LabError(f"lab {self.name!r} has no internet segment (up(internet=True))")
        return Namespace(self.state.inet_namespace)

    def inet_exec(self, *cmd: str, check: bool = True, timeout: float = 60,
                  input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command to completion in the internet namespace."""
        return commands.run_in(self._inet(), cmd, check=check, timeout=timeout, input=input)

    def inet_spawn(self, *argv: str, log: str = "inet.log") -> processes.Process:
        """Start a background process in the internet namespace (stop it by its record:
        processes.stop(proc)); `down` kills whatever is left there anyway."""
        return processes.spawn(self._inet(), argv, self.directory / log)

    # commands --------------------------------------------------------------------
    def exec(self, host: str, *cmd: str, check: bool = True, timeout: float = 60,
             env: dict[str, str] | None = None,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command to completion in a host's namespace."""
        return commands.run_in(self.namespace(host), cmd, check=check, timeout=timeout,
                               env=env, input=input)

    def atwill_ctl(self, *args: str, check: bool = True,
                   timeout: float = 60) -> subprocess.CompletedProcess:
        """An operator command on the controller host (`atwill ARGS --state-dir CTL`)."""
        ctl = self.state.controller
        return self.exec(ctl.name, commands.ATWILL, *args, "--state-dir", ctl.state_dir,
                         check=check, timeout=timeout)

    def openstack(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        """The openstack CLI on the controller host; parsed JSON for `-f json`."""
        ctl = self.state.controller
        env = commands.openstack_env(Path(ctl.state_dir) / "clouds.yaml")
        proc = self.exec(ctl.name, commands.OPENSTACK, "--os-cloud", "atwill", *args,
                         check=check, timeout=timeout, env=env)
        if check and commands.wants_json(args):
            return commands.parse(proc.stdout)
        return proc if not check else proc.stdout
