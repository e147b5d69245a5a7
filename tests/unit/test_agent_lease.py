"""agent/lease.py and agent/peers.py: the lease decision, the kill, and the echo rules."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from atwill.agent.lease import Lease
from atwill.agent.peers import MAGIC, PeerProber

PEERS = {"peers": [{"id": "p1", "address": "10.9.0.1"}, {"id": "p2", "address": "10.9.0.2"}]}


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, target: tuple[str, int]) -> None:
        self.sent.append((data, target))


def prober(answering: list[str]) -> PeerProber:
    """A prober whose peers in answering have just answered one of its probes."""
    p = PeerProber("me")
    p.configure(PEERS)
    sock = FakeSocket()
    p._probe(sock)  # noqa: SLF001 - drive the echo without a network
    for data, (address, port) in sock.sent:
        peer = {"10.9.0.1": "p1", "10.9.0.2": "p2"}[address]
        if peer in answering:
            nonce = data.split(b" ")[3]
            p._handle(sock, b" ".join((MAGIC, b"A", peer.encode(), nonce)), address, port)  # noqa: SLF001
    return p


@pytest.fixture()
def qemu() -> subprocess.Popen:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def make_lease(tmp_path: Path, answering: list[str], proc: subprocess.Popen) -> Lease:
    lease = Lease(tmp_path, prober(answering), {"vm-ha": proc.pid}.get)
    lease.configure({"lease": 6.0, "protected": ["vm-ha"], **PEERS})
    return lease


def test_isolated_node_kills_its_protected_qemu_and_starts_none(tmp_path: Path,
                                                                 qemu: subprocess.Popen) -> None:
    lease = make_lease(tmp_path, [], qemu)
    now = time.monotonic()
    lease.renewed(now - 5.0)
    assert lease.check(now) == [] and qemu.poll() is None  # lease still valid
    assert lease.check(now + 1.0) == ["vm-ha"]
    assert qemu.wait(5) == -9  # SIGKILL
    wanted = [{"id": "vm-ha"}, {"id": "vm-plain"}]
    assert lease.allowed(wanted) == [{"id": "vm-plain"}]
    # Renewed: still fenced until the controller said what is ours to run...
    lease.renewed(now + 2.0)
    assert lease.allowed(wanted) == [{"id": "vm-plain"}]
    asked_before = time.monotonic()
    lease.unfence()
    assert lease.allowed(wanted) == wanted
    # ...and a desired state asked for before that is refused as stale.
    assert lease.allowed(wanted, asked_before) is None
    assert lease.allowed(wanted, time.monotonic()) == wanted


def test_controller_outage_kills_nothing(tmp_path: Path, qemu: subprocess.Popen) -> None:
    lease = make_lease(tmp_path, ["p1"], qemu)  # one of two peers answers: half
    lease.renewed(time.monotonic() - 60.0)
    assert lease.check(time.monotonic()) == [] and not lease.fenced
    assert qemu.poll() is None
    off = make_lease(tmp_path, [], qemu)
    off.configure({"lease": 0, "protected": ["vm-ha"], **PEERS})
    assert off.check(time.monotonic() + 600) == [] and qemu.poll() is None


def test_a_restarted_agent_keeps_counting_the_same_lease(tmp_path: Path,
                                                         qemu: subprocess.Popen) -> None:
    first = make_lease(tmp_path, [], qemu)
    sent = time.monotonic() - 4.0
    first.renewed(sent)
    assert json.loads((tmp_path / "lease.json").read_text())["renewed_at"] == sent
    second = make_lease(tmp_path, [], qemu)
    assert second.renewed_at == sent  # not a fresh lease granted to itself
    assert second.check(sent + 6.0) == ["vm-ha"]
    qemu.wait(5)


def test_echo_counts_only_answers_with_our_nonce_from_the_peers_address() -> None:
    p = PeerProber("me")
    p.configure(PEERS)
    sock = FakeSocket()
    p._probe(sock)  # noqa: SLF001
    nonce = sock.sent[0][0].split(b" ")[3]
    p._handle(sock, b" ".join((MAGIC, b"A", b"p1", b"forged")), "10.9.0.1", 1)  # noqa: SLF001
    p._handle(sock, b" ".join((MAGIC, b"A", b"p1", nonce)), "192.0.2.7", 1)  # noqa: SLF001
    assert p.answer_ages(time.monotonic())["p1"] is None
    # A probe from p2 is answered and counts as a sign of p2 in the report, but not as
    # an answer (it proves p2 hears us, not that we reach p2).
    before = len(sock.sent)
    p._handle(sock, b" ".join((MAGIC, b"P", b"p2", b"abc")), "10.9.0.2", 4000)  # noqa: SLF001
    assert sock.sent[before] == (b" ".join((MAGIC, b"A", b"me", b"abc")), ("10.9.0.2", 4000))
    now = time.monotonic()
    assert p.answer_ages(now)["p2"] is None
    assert p.report(now)["p2"] < 0.5
    p._handle(sock, b" ".join((MAGIC, b"A", b"p1", nonce)), "10.9.0.1", 1)  # noqa: SLF001
    assert p.answer_ages(time.monotonic())["p1"] < 0.5
