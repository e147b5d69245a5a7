"""Overlay interface names and WireGuard keys."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

from atwill.hostlib.overlay.base import interface_name
from atwill.hostlib.overlay.wireguard import generate_keypair, public_key_of


def test_interface_name_is_stable_short_and_distinct() -> None:
    name = interface_name("awg-", "/var/lib/atwill-node")
    assert name == interface_name("awg-", "/var/lib/atwill-node")
    assert name != interface_name("awg-", "/var/lib/atwill-node2")
    assert len(name) == 12 and name.startswith("awg-") and int(name[4:], 16) >= 0
    with pytest.raises(ValueError):
        interface_name("much-too-long", "x")


def test_keypair_shape() -> None:
    private, public = generate_keypair()
    raw = base64.b64decode(private)
    assert len(raw) == 32 and raw[0] & 7 == 0 and raw[31] & 0xC0 == 0x40  # clamped
    assert public_key_of(private) == public and len(base64.b64decode(public)) == 32


@pytest.mark.skipif(shutil.which("wg") is None, reason="needs wireguard-tools")
def test_keys_match_wg() -> None:
    private, public = generate_keypair()
    shown = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True,
                           check=True)
    assert shown.stdout.strip() == public
    made = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    expected = subprocess.run(["wg", "pubkey"], input=made, capture_output=True, text=True,
                              check=True).stdout
    assert public_key_of(made) == expected.strip()
