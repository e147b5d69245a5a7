"""Which TLS-PSK identity an attachment's export admits (core/volume_handover.py): the
attachment's own, or one a live migration of that attachment gave it; never a name
from elsewhere (review finding: a connector's psk_identity was believed)."""

from __future__ import annotations

import pytest

from atwill.core import volume_handover as vh

ATT = "7d0c4b8a-2f8e-4b4e-9a53-0d6f5c1e2a3b"
OTHER = "0b7c2a5e-1111-4222-8333-944455556666"


def test_a_moved_identity_is_this_attachments_from_a_migration() -> None:
    assert vh.moved_identity(ATT, vh.identity(ATT, 12)) == f"atwill-att-{ATT}-lm12"


@pytest.mark.parametrize("named", [
    None, 7, "", f"atwill-att-{ATT}", f"atwill-att-{OTHER}", f"atwill-att-{OTHER}-lm3",
    f"atwill-att-{ATT}-lm", f"atwill-att-{ATT}-lm3x", f"atwill-att-{ATT}-lm\u0663",
    f"atwill-att-{ATT}-lm3:{'ab' * 32}", f"atwill-att-{ATT}-lm3\n", "atwill-att-evil"])
def test_anything_else_is_not_believed(named: object) -> None:
    assert vh.moved_identity(ATT, named) is None


def test_the_destinations_key_is_not_the_tls_keys_derivation() -> None:
    """The key comes from the volume key it is given: another secret, another key."""
    tls, volume = "cd" * 32, "ef" * 32
    assert vh.key(volume, ATT) != vh.key(tls, ATT)
    assert vh.destination_psk(volume, ATT, 5)["key"] == vh.key(volume, ATT)
