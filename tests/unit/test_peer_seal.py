"""Peer secrets sealed with a key derived from the cluster CA's key (never in the DB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.controller.peers.seal import Sealer
from atwill.core.scope import PeerUnavailable
from atwill.pki import create_ca


def _sealer(directory: Path) -> Sealer:
    create_ca(directory)
    return Sealer(directory)


def test_sealed_secret_opens_only_with_its_ca_key(tmp_path: Path) -> None:
    one, other = _sealer(tmp_path / "one"), _sealer(tmp_path / "other")
    sealed = one.seal("atwp_secret")
    assert "atwp_secret" not in sealed and sealed != one.seal("atwp_secret")
    assert one.unseal(sealed, "CloudTwo") == "atwp_secret"
    # The same state directory read afresh (another worker) opens it too.
    assert Sealer(tmp_path / "one").unseal(sealed, "CloudTwo") == "atwp_secret"
    with pytest.raises(PeerUnavailable, match="another CA key"):
        other.unseal(sealed, "CloudTwo")


def test_a_peer_paired_before_sealing_is_a_clear_503(tmp_path: Path) -> None:
    sealer = _sealer(tmp_path)
    for missing in (None, ""):
        with pytest.raises(PeerUnavailable, match="CloudTwo was paired before") as err:
            sealer.unseal(missing, "CloudTwo")
        assert err.value.status == 503 and "pair again" in err.value.message
