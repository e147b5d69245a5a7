"""Autojoin in the lab: a host booted with only join settings becomes a node by itself."""

from __future__ import annotations

import configparser
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.lab import Lab
from atwill.lab.commands import ATWILL

LAB = {"nodes": 0, "join": False, "timeout": 60}


@pytest.fixture
def hosts(lab: Lab) -> Iterator[list[str]]:
    """Node hosts the test adds; removed from the cloud and the lab afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        if name in lab.node_states():
            lab.remove_node(name, force=True)
        lab.destroy_host(name)


def agent_log(lab: Lab, name: str) -> str:
    return (Path(lab.host(name).state_dir) / "agent.log").read_text(errors="replace")


def test_a_host_with_only_the_join_variables_joins_by_itself(lab: Lab, hosts: list) -> None:
    hosts.append(lab.add_node("auto", join=False))
    lab.boot_agent("auto", lab.join_settings("auto"))
    lab.wait_node_state("auto", "up", 60)
    log = agent_log(lab, "auto")
    assert "autojoined" in log and "Traceback" not in log


def test_the_service_unit_alone_joins_the_host(lab: Lab, hosts: list) -> None:
    # What cloud-init's runcmd does, then what systemd does with the unit it wrote.
    hosts.append(lab.add_node("svc", join=False))
    home = Path(lab.host("svc").state_dir)
    settings = lab.join_settings("svc")
    lab.exec("svc", ATWILL, "node", "install-service", "--unit-dir", str(home / "units"),
             "--env-file", str(home / "join.env"), "--state-dir", str(home),
             "--url", settings["ATWILL_JOIN_URL"], "--token", settings["ATWILL_JOIN_TOKEN"],
             "--ca-hash", settings["ATWILL_JOIN_CA_HASH"], "--name", "svc")
    unit = configparser.ConfigParser(interpolation=None)
    unit.read(home / "units" / "atwill-agent.service")
    lab.boot_agent("svc", {}, unit["Service"]["ExecStart"].split())
    lab.wait_node_state("svc", "up", 60)


def test_a_used_up_token_is_said_once_and_retried(lab: Lab, hosts: list) -> None:
    settings = lab.join_settings()
    hosts.append(lab.add_node("first", join=False))
    lab.boot_agent("first", {**settings, "ATWILL_JOIN_NAME": "first"})
    lab.wait_node_state("first", "up", 60)
    hosts.append(lab.add_node("second", join=False))
    lab.boot_agent("second", {**settings, "ATWILL_JOIN_NAME": "second",
                              "ATWILL_LOG_LEVEL": "debug"})
    lab.wait_for(lambda: agent_log(lab, "second").count("autojoin attempt") >= 2, 30,
                 "second's agent to retry its join")
    time.sleep(1)
    log = agent_log(lab, "second")
    said = [line for line in log.splitlines() if "autojoin to" in line]
    assert len(said) == 1, log
    assert "WARNING" in said[0] and ("used" in said[0] or "invalid" in said[0]), said
    assert "Traceback" not in log
    assert lab.agent_alive("second"), "the agent waits and retries; it does not exit"
    assert "second" not in lab.node_states()
