"""Lab hosts: a namespace each, joined to the WAN namespace's bridge by a veth.

WAN emulation: `delay` and `loss` apply per direction on each host's access link
(netem on the host's `wan0` for what it sends, and on the WAN-side end for what
it receives). A packet between two hosts crosses two access links, so with the
same settings everywhere the one-way delay between two hosts is 2 x delay, the
round trip 4 x delay, and the loss 1 - (1 - loss)^2 each way.

On a kernel without netem the first delay or loss turns the WAN into the
userspace emulator (wanemu.py) for the rest of the lab's life: the veths leave
the bridge and the emulator switches frames between them with the same delay
and loss per access link. ATWILL_LAB_WANEMU=1 chooses it even where netem exists.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from . import naming, processes, wanctl
from .netns import Namespace, netem_supported
from .revert import Reverter
from .state import Host, LabState
from .wanswitch import Link

HOST_IF = "wan0"
# `ip netns exec NS` bind-mounts the files of ETC_NETNS/NS over /etc: a lab host's own
# hosts file, which names the cloud (state.cloud_host) with one address per controller.
ETC_NETNS = Path("/etc/netns")
# A deleted namespace's links are torn down by the kernel in the background (seconds, a
# minute or two on a loaded machine); a new host of the same name waits at most this long.
LINK_WAIT = 120.0


def wan(state: LabState) -> Namespace:
    return Namespace(state.wan_namespace)


def namespace(host: Host) -> Namespace:
    return Namespace(host.namespace)


def _record_namespace(state: LabState, name: str) -> None:
    """Record the namespace before it exists, so `down` finds it whatever happens next."""
    if name not in state.namespaces:
        state.namespaces.append(name)
    state.save()


def create_wan(state: LabState, revert: Reverter) -> None:
    """The WAN namespace holding the bridge every access link plugs into (no address)."""
    ns = wan(state)
    _record_namespace(state, ns.name)
    revert.add(lambda: delete_namespace(state, ns.name))
    ns.create()
    # The WAN is only a switch: no IPv6 link-local addresses, so it never speaks itself.
    for scope in ("all", "default"):
        ns.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "1")
    ns.add_bridge(state.bridge)


def inet(state: LabState) -> Namespace:
    return Namespace(state.inet_namespace)


def create_inet(state: LabState, revert: Reverter) -> None:
    """The "internet": a bridge that owns the public subnet's gateway, and beyond it (on
    lo) an address that stands for the rest of the world. Nodes join it by veth."""
    state.inet_namespace = naming.namespace(state.name, naming.INET)
    ns = inet(state)
    _record_namespace(state, ns.name)
    revert.add(lambda: delete_namespace(state, ns.name))
    ns.create()
    for scope in ("all", "default"):
        ns.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "1")
    ns.add_bridge(naming.INET_BRIDGE)
    prefix = naming.EXTERNAL_CIDR.prefixlen
    ns.add_address(naming.INET_BRIDGE, f"{naming.INET_GATEWAY}/{prefix}")
    ns.add_address("lo", f"{naming.INTERNET_IP}/32")


def connect_inet(state: LabState, host: Host) -> None:
    """The node's external wire: ext0 in the node (its agent bridges it), x-NODE in inet."""
    used = {h.external_address for h in state.hosts.values() if h.external_address}
    host.external_address = naming.external_address(used)
    state.save()
    ns = inet(state)
    veth = naming.inet_veth(host.name)
    ns.add_veth(veth, naming.NODE_EXTERNAL_PORT, namespace(host))
    ns.attach(veth, naming.INET_BRIDGE)
    ns.link_up(veth)


def new_host(state: LabState, name: str, role: str, octet: int,
             delay: str | None, loss: str | None) -> Host:
    return Host(name=name, role=role, namespace=naming.namespace(state.name, name),
                address=naming.address(state.name, octet),
                state_dir=str(Path(state.directory) / name),
                wan_veth=naming.wan_veth(name), delay=delay, loss=loss)


def create_host(state: LabState, host: Host, revert: Reverter) -> None:
    """Namespace, access link with address and netem, and an (empty) state directory."""
    if host.name in state.hosts:
        raise ValueError(f"host {host.name!r} already exists in lab {state.name!r}")
    ns, wan_ns = namespace(host), wan(state)
    if ns.exists():
        raise ValueError(f"namespace {ns.name} already exists; not touching it")
    wait_links_gone(state, host.name)
    state.hosts[host.name] = host
    _record_namespace(state, ns.name)
    revert.add(lambda: destroy_host(state, host.name))
    ns.create()
    wan_ns.add_veth(host.wan_veth, HOST_IF, ns)
    if state.wan_emulated:
        ns.gso_max_segs(HOST_IF, 1)
    else:
        wan_ns.attach(host.wan_veth, state.bridge)
    wan_ns.link_up(host.wan_veth)
    ns.add_address(HOST_IF, host.address)
    ns.link_up(HOST_IF)
    if host.role == "node" and state.inet_namespace:
        connect_inet(state, host)
    write_names(state)
    set_wan(state, host, host.delay, host.loss)


def cloud_names(state: LabState) -> str:
    """The machine's hosts file plus the cloud's name at every controller's address."""
    base = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    lines = [f"{h.ip} {state.cloud_host}\n" for h in state.controllers()]
    return base.rstrip("\n") + f"\n# atwill lab {state.name}: the cloud's name\n" + \
        "".join(lines)


def write_names(state: LabState) -> None:
    """Every host's hosts file, rewritten in place (a running process's bind mount keeps
    the file's inode, so it sees the new controller too)."""
    if not state.cloud_host:
        return
    text = cloud_names(state)
    for host in state.hosts.values():
        directory = ETC_NETNS / host.namespace
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "hosts", "w") as out:
            out.write(text)


def remove_names(name: str) -> None:
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
    try:
        ETC_NETNS.rmdir()  # only if no other namespace has files there
    except OSError:
        pass


def use_netem() -> bool:
    return os.environ.get("ATWILL_LAB_WANEMU") != "1" and netem_supported()


def set_wan(state: LabState, host: Host, delay: str | None, loss: str | None) -> None:
    """Apply delay/loss in both directions of the host's access link (None: clear)."""
    Link.parse(delay, loss)  # a malformed value fails here, before anything changes
    host.delay, host.loss = delay, loss
    state.save()
    if state.wan_emulated:
        wanctl.configure(state)
    elif (delay or loss) and not use_netem():
        use_emulator(state)
    else:
        set_netem(state, host, delay, loss)


def set_netem(state: LabState, host: Host, delay: str | None, loss: str | None) -> None:
    """netem on both ends of the host's access link (None for both: remove it)."""
    for ns, dev in ((namespace(host), HOST_IF), (wan(state), host.wan_veth)):
        if delay or loss:
            ns.netem(dev, delay, loss)
        else:
            ns.clear_netem(dev)


def use_emulator(state: LabState) -> None:
    """Switch the WAN from the bridge to the userspace emulator, for good."""
    state.wan_emulated = True
    state.save()
    wan_ns = wan(state)
    for host in state.hosts.values():
        # Out of the bridge first, so no frame is ever forwarded by both.
        wan_ns.detach(host.wan_veth)
        namespace(host).gso_max_segs(HOST_IF, 1)
    wanctl.start(state)


def partition(state: LabState, host: Host) -> None:
    """Cut the host off the WAN: its access link goes down on the WAN side."""
    wan(state).link_down(host.wan_veth)


def heal(state: LabState, host: Host) -> None:
    """Reconnect the host to the WAN."""
    wan(state).link_up(host.wan_veth)


def is_partitioned(state: LabState, host: Host) -> bool:
    return not wan(state).link_is_up(host.wan_veth)


def delete_namespace(state: LabState, name: str) -> None:
    """Kill every process left in the namespace, then delete it (its links go with it)."""
    ns = Namespace(name)
    processes.kill_namespace(ns)
    ns.delete()
    if state.cloud_host:
        remove_names(name)
    if name in state.namespaces:
        state.namespaces.remove(name)
    state.save()


def _outer_links(state: LabState, name: str) -> list[tuple[Namespace, str]]:
    """The far ends of a host's links: they live on in other namespaces by its name."""
    links = [(wan(state), naming.wan_veth(name))]
    if state.inet_namespace:
        links.append((inet(state), naming.inet_veth(name)))
    return links


def wait_links_gone(state: LabState, name: str, timeout: float = LINK_WAIT) -> None:
    """Wait (bounded) until no link of an earlier host of this name is left."""
    deadline = time.monotonic() + timeout
    while left := [f"{dev} in {ns.name}" for ns, dev in _outer_links(state, name)
                   if ns.exists() and ns.link_exists(dev)]:
        if time.monotonic() >= deadline:
            raise ValueError(f"the links of an earlier host {name!r} are still there after "
                             f"{timeout:g}s ({', '.join(left)}); try again later")
        time.sleep(0.2)


def remove_qmp_sockets(state: LabState, host: Host) -> None:
    """The QMP sockets of the host's instances: they are in the /run all hosts share.

    An instance another host also has (evacuated, rebuilt there) keeps its socket.
    """
    from ..agent.hypervisor.qemu import SOCKETS_DIR, QemuDriver

    def uuids(h: Host) -> set[str]:
        instances = Path(h.state_dir) / "instances"
        return {d.name for d in instances.iterdir() if d.is_dir()} if instances.is_dir() \
            else set()

    others = set().union(*(uuids(h) for h in state.hosts.values() if h.name != host.name))
    driver = QemuDriver(Path(host.state_dir) / "instances")
    for uuid in uuids(host) - others:
        driver.paths(uuid).qmp.unlink(missing_ok=True)
    if driver.sockets_dir != SOCKETS_DIR:  # the host's own directory (qemu.sockets_of)
        shutil.rmtree(driver.sockets_dir, ignore_errors=True)


def destroy_host(state: LabState, name: str) -> None:
    """Stop the host's processes, delete its namespace and state directory, forget it."""
    host = state.hosts.get(name)
    if host is None:
        return
    for proc in host.processes.values():
        processes.kill(proc)
    processes.kill_namespace(namespace(host))
    # Deleting a veth end removes its peer at once, unlike the namespace's own teardown.
    for ns, dev in _outer_links(state, name):
        if ns.exists():
            ns.delete_link(dev)
    delete_namespace(state, host.namespace)
    remove_qmp_sockets(state, host)
    shutil.rmtree(host.state_dir, ignore_errors=True)
    del state.hosts[name]
    state.save()
    if wanctl.running(state):
        wanctl.configure(state)
