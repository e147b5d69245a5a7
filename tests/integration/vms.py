"""Helpers for the tests that boot real VMs in the lab."""

from __future__ import annotations

import time

from atwill.guest.build import build_image
from atwill.lab import Lab

READY = "atwill-guest ready:"


def upload_guest(lab: Lab) -> str:
    """The guest image's id, uploaded unless a module before, sharing the lab, did."""
    there = lab.openstack("image", "list", "--name", "atwill-guest", "-f", "json")
    if there:
        return there[0]["ID"]
    path = build_image().path
    return lab.openstack("image", "create", "--file", str(path), "--disk-format", "qcow2",
                         "--container-format", "bare", "--public", "atwill-guest",
                         "-f", "json")["id"]


def console(lab: Lab, server: str, *auth: str) -> str:
    return lab.openstack(*auth, "console", "log", "show", server) or ""


def wait_console(lab: Lab, server: str, text: str, timeout: float = 180,
                 auth: tuple[str, ...] = ()) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = console(lab, server, *auth)
        if text in seen:
            return seen
        time.sleep(2)
    raise AssertionError(f"{server}: {text!r} never appeared on the console:\n{seen[-2000:]}")


def wait_status(lab: Lab, server: str, status: str, timeout: float = 120,
                auth: tuple[str, ...] = ()) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = lab.openstack(*auth, "server", "show", server, "-f", "json")
        if shown["status"] == status:
            return shown
        time.sleep(1)
    raise AssertionError(f"{server} never reached {status}: {shown.get('status')} "
                         f"{shown.get('fault')}")


def create_server(lab: Lab, *args: str, timeout: float = 300,
                  auth: tuple[str, ...] = ()) -> dict:
    """`server create ARGS`, then the server (`server show`) once it is ACTIVE.

    As the CLI's `--wait`, and failing as it does on ERROR, but polled each second:
    `--wait` asks every 5 s (osc-lib's wait_for_status), so each create waited ~5 s for a
    server that a lab node has running well before that."""
    made = lab.openstack(*auth, "server", "create", *args, "-f", "json")
    return wait_server(lab, made["id"], ("ACTIVE",), timeout, auth)


def wait_server(lab: Lab, server: str, statuses: tuple[str, ...], timeout: float = 300,
                auth: tuple[str, ...] = ()) -> dict:
    """The server once its status is one of statuses, polled each second; an ERROR fails
    at once (as the CLI's --wait does)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = lab.openstack(*auth, "server", "show", server, "-f", "json")
        if shown["status"] in statuses:
            return shown
        if shown["status"] == "ERROR":
            raise AssertionError(f"{server} went to ERROR, not {statuses}: "
                                 f"{shown.get('fault')}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{server} never reached {statuses}: {shown['status']}")
        time.sleep(1)


def peer_check(address: str) -> str:
    """user_data that fetches a peer's HTTP page and says on the console what happened."""
    return (
        "#!/bin/sh\n"
        "for i in $(seq 1 40); do\n"
        f"  out=$(timeout 3 wget -qO- http://{address}/ 2>/dev/null) && "
        "{ echo \"PEER-OK $out\" > /dev/console; exit 0; }\n"
        "  sleep 2\n"
        "done\n"
        "echo PEER-FAIL > /dev/console\n")


def first_ip(server: dict) -> str:
    addresses = server["addresses"]
    return next(iter(addresses.values()))[0] if isinstance(addresses, dict) else \
        str(addresses).split("=")[1].split(",")[0].strip()
