"""Fence device options: parsing, secrets, Pacemaker's host maps and the agent's stdin."""

from __future__ import annotations

import pytest

from atwill.core import fence_options as fo
from atwill.core.errors import BadRequest


def test_pairs_become_options_and_secrets_are_told_apart() -> None:
    options = fo.parse_pairs(["ip=10.0.0.9", "username=admin", "password=s3=cret",
                              "snmp_priv_passwd=x", "api_key=k", "lanplus=1"])
    assert options["password"] == "s3=cret"  # only the first '=' separates
    plain, secret = fo.split_secrets(options)
    assert plain == {"ip": "10.0.0.9", "username": "admin", "lanplus": "1"}
    assert set(secret) == {"password", "snmp_priv_passwd", "api_key"}
    assert fo.masked(plain, sorted(secret))["password"] == fo.MASK


@pytest.mark.parametrize("pairs, words", [
    (["ip"], "key=value"),
    (["IP=1"], "lower-case"),
    (["action=off"], "set by atwill"),
    (["ip=1\nport=7"], "control characters"),
    (["password=a\tb"], "control characters"),
    (["pcmk_host_map=node1"], "host:port"),
])
def test_bad_options_are_refused(pairs: list[str], words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        fo.parse_pairs(pairs)
    assert words in caught.value.message
    assert "\n" not in caught.value.message


def test_agent_and_level_are_checked() -> None:
    assert fo.check_agent("fence_ipmilan") == "fence_ipmilan"
    for bad in ("ipmilan", "fence_../../bin/sh", "/usr/sbin/fence_apc", ""):
        with pytest.raises(BadRequest):
            fo.check_agent(bad)
    with pytest.raises(BadRequest):
        fo.check_level(0)
    with pytest.raises(BadRequest):
        fo.check_level(True)


def test_stdin_maps_the_node_to_its_pdu_port_and_drops_pacemaker_options() -> None:
    options = {"ip": "pdu", "username": "apc", "password": "apc",
               "pcmk_host_map": "east-01:2; east-02:3,east-03:4"}
    lines = fo.agent_stdin(options, "off", "east-02").splitlines()
    assert lines == ["ip=pdu", "username=apc", "password=apc", "port=3", "action=off",
                     "nodename=east-02"]
    assert "port=" not in fo.agent_stdin(options, "status", "west-01")


def test_host_argument_passes_the_node_name() -> None:
    text = fo.agent_stdin({"pcmk_host_argument": "plug"}, "status", "node1")
    assert text == "plug=node1\naction=status\nnodename=node1\n"


def test_redact_hides_every_secret_longest_first() -> None:
    text = "login failed for admin with password hunter2hunter2 (hunter2)"
    assert fo.redact(text, ["hunter2", "hunter2hunter2", ""]) == (
        f"login failed for admin with password {fo.MASK} ({fo.MASK})")
