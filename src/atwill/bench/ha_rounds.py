"""bench ha's repeated partition/heal rounds, and its before/after detection switch.

A round: the host running the round's HA server is cut off the WAN (from the
controller and its peers; its BMC, on the controller host, still answers), so it
is detected, fenced and the server rebuilt on another node; then the link is
healed, the host powered on again if its BMC turned it off, and the round ends
when the host is up with its stale copy gone. A sampler lists every lab host's
QEMU processes every 100 ms all along (ha_sampler): a moment where one instance
runs on two hosts is counted, and after each round the hosts holding the
server's directory (the agents' state) must be at most the one it runs on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .ha_sampler import CopySampler

if TYPE_CHECKING:
    from .ha import HaBench

ROUND_TIMEOUT = 150.0


def server_host(bench: HaBench, sid: str) -> tuple[str, str]:
    shown = bench.lab.openstack("server", "show", sid, "-f", "json")
    return shown["status"], shown["OS-EXT-SRV-ATTR:host"]


def holders(bench: HaBench, sid: str) -> list[str]:
    """The hosts whose agent keeps a directory for the instance."""
    return sorted(h for h in bench.lab.node_names()
                  if (Path(bench.lab.host(h).state_dir) / "instances" / sid).exists())


def one_round(bench: HaBench, sid: str, sampler: CopySampler) -> dict[str, Any]:
    lab = bench.lab
    _, host = server_host(bench, sid)
    cut = time.monotonic()
    lab.partition(host)
    try:
        lab.wait_for(lambda: (s := server_host(bench, sid))[0] == "ACTIVE" and s[1] != host,
                     ROUND_TIMEOUT, f"the server ACTIVE off {host}")
    finally:
        lab.heal(host)
    moved = time.monotonic() - cut
    if not lab.agent_alive(host):
        lab.start_node(host)  # its BMC powered it off
    lab.wait_for(lambda: bench.node(host)["health"] == "up" and host not in holders(bench, sid),
                 ROUND_TIMEOUT, f"{host} back, its stale copy gone")
    _, now_on = server_host(bench, sid)
    running = sorted(sampler.last.get(sid, set()))
    return {"partitioned": host, "moved_to": now_on, "active_elsewhere_s": round(moved, 1),
            "round_s": round(time.monotonic() - cut, 1), "qemu_on": running,
            "holders": holders(bench, sid), "double_copies_so_far": len(sampler.doubles)}


def partition_rounds(bench: HaBench, start_on: str, rounds: int,
                     budget_s: float) -> dict[str, Any]:
    """K rounds (fewer past budget_s, at least one); the sampler's count of double copies."""
    sid = bench.create("rounds-", start_on, 1)[0]
    lab = bench.lab
    sampler = CopySampler((h, lab.host(h).namespace) for h in lab.node_names())
    done: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for _ in range(rounds):
            if done and time.monotonic() - started > budget_s:
                break
            done.append(one_round(bench, sid, sampler))
    finally:
        sampler.stop()
    bench.delete([sid])
    # Agent state after each round: the server's directory on the host that runs it only.
    stray = [r for r in done if len(r["holders"]) > 1 or
             (r["qemu_on"] and r["holders"] != r["qemu_on"])]
    return {"rounds": len(done), "asked": rounds, "samples": sampler.samples,
            "double_copy_samples": len(sampler.doubles), "first_doubles": sampler.doubles[:3],
            "rounds_with_stray_state": len(stray), "per_round": done,
            "elapsed_s": round(time.monotonic() - started, 1)}


def set_controller(bench: HaBench, **settings: Any) -> None:
    """Restart the lab's controller with these settings in its atwill.yaml; every node up."""
    lab = bench.lab
    path = Path(lab.state.controller.state_dir) / "atwill.yaml"
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    data.update(settings)
    path.write_text(yaml.safe_dump(data))
    lab.stop_controller()
    lab.start_controller()
    try:
        lab.wait_for(lambda: all(n.get("health") == "up" for n in _nodes(bench)), 60,
                     "every node up after the controller's restart")
    except TimeoutError as err:
        seen = [(n["name"], n["state"], n["health"], n["fence_state"], n["last_heartbeat"])
                for n in _nodes(bench)]
        lines = _tail(Path(lab.state.controller.state_dir) / "controller.log")
        for name in lab.node_names():
            lines += [f"{name}: {x}" for x in _tail(Path(lab.host(name).state_dir) / "agent.log")]
        raise RuntimeError(f"{err}: {seen}\n" + "\n".join(lines)) from None


def _tail(path: Path, count: int = 25) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-count:] if path.exists() else []


def _nodes(bench: HaBench) -> list[dict[str, Any]]:
    return [json.loads(bench.lab.atwill_ctl("node", "show", n).stdout)
            for n in bench.lab.node_names()]
