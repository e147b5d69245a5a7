"""Checks shared by the cluster tests in the lab."""

from __future__ import annotations

import json
import time

from atwill.lab import Lab


def overlay_ips(lab: Lab) -> dict[str, str]:
    """Host name -> overlay address, the controller's included."""
    ips = {n["name"]: n["overlay_ip"] for n in lab.node_list()}
    ips["ctl"] = "100.72.0.1"
    return ips


def pings(lab: Lab, host: str, address: str, tries: int = 10,
          within: float | None = None) -> bool:
    """Whether one ping of `tries` (or of those sent within `within` seconds) answers."""
    deadline = time.monotonic() + within if within is not None else None
    sent = 0
    while sent < tries or (deadline is not None and time.monotonic() < deadline):
        if lab.exec(host, "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            return True
        sent += 1
        time.sleep(0.5)
    return False


def full_mesh(lab: Lab, within: float | None = None) -> None:
    """Every host reaches every other over the overlay; each pair may take `within`
    seconds (default: ten pings)."""
    ips = overlay_ips(lab)
    for source in ips:
        for target, address in ips.items():
            if source != target:
                assert pings(lab, source, address, within=within), (
                    f"{source} cannot reach {target} ({address}):\n{overlay_state(lab, source)}"
                    f"\n{overlay_state(lab, target)}")


def overlay_state(lab: Lab, host: str) -> str:
    """What a failed reachability check needs to be understood: the host's WireGuard peers."""
    shown = [lab.exec(host, "wg", "show", link, check=False).stdout
             for link in overlay_links(lab, host)]
    log = lab.directory / host / "agent.log"
    tail = log.read_text()[-4000:] if log.exists() else "no agent log"
    return "\n".join(shown or ["no overlay interface"]) + f"\n--- {host}'s agent log ---\n{tail}"


def overlay_links(lab: Lab, host: str) -> list[str]:
    """Names of the overlay interfaces in a host's namespace."""
    out = lab.exec(host, "ip", "-j", "link", "show").stdout
    return [link["ifname"] for link in json.loads(out)
            if link["ifname"].startswith(("awg-", "aov-"))]


def host_processes(lab: Lab, host: str) -> list[str]:
    """Command names of every process still running in a host's namespace."""
    pids = _pids(lab.namespace(host).name)
    names = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                names.append(handle.read().strip())
        except OSError:
            pass
    return names


def host_process_ids(lab: Lab, host: str, name: str) -> list[str]:
    """PIDs of the processes named `name` running in a host's namespace."""
    found = []
    for pid in _pids(lab.namespace(host).name):
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == name:
                    found.append(pid)
        except OSError:
            pass
    return sorted(found)


def host_process_users(lab: Lab, host: str) -> list[tuple[str, int]]:
    """(command name, real uid) of every process running in a host's namespace."""
    found = []
    for pid in _pids(lab.namespace(host).name):
        try:
            with open(f"/proc/{pid}/status") as handle:
                status = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        found.append((status["Name"].strip(), int(status["Uid"].split()[0])))
    return found


def _pids(namespace: str) -> list[str]:
    import subprocess

    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return out.stdout.split()
