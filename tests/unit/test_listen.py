"""Where the controller listens: its configured address and its overlay address."""

import socket
from pathlib import Path

import pytest

from atwill.config import Settings
from atwill.controller import listen, state


def test_overlay_address_is_added_unless_covered_or_absent(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, listen_host="192.0.2.10", overlay_cidr="100.72.0.0/16")
    assert listen.addresses(settings) == ["192.0.2.10", "100.72.0.1"]
    assert settings.overlay_url == "https://100.72.0.1:8686"
    settings.listen_host = "0.0.0.0"
    assert listen.addresses(settings) == ["0.0.0.0"]
    settings.overlay = "none"
    settings.listen_host = "127.0.0.1"
    assert listen.addresses(settings) == ["127.0.0.1"]
    assert settings.overlay_url is None


def test_certificate_names_carry_the_overlay_address(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, overlay_cidr="100.99.0.0/24")
    assert "100.99.0.1" in state.tls_hosts(settings)
    settings.overlay = "none"
    assert "100.99.0.1" not in state.tls_hosts(settings)


def test_overlay_socket_binds_before_its_address_exists(tmp_path: Path) -> None:
    # 100.72.0.1 is not configured on this host: IP_FREEBIND lets it bind anyway.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(state_dir=tmp_path, listen_host="127.0.0.1", port=port)
    made = listen.sockets(settings)
    try:
        assert [s.getsockname() for s in made] == [("127.0.0.1", port), ("100.72.0.1", port)]
        # A child such as wireguard-go must not keep the port after the controller exits.
        assert not any(s.get_inheritable() for s in made)
    finally:
        for sock in made:
            sock.close()


def test_the_configured_address_must_bind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        settings = Settings(state_dir=tmp_path, listen_host="127.0.0.1",
                            port=taken.getsockname()[1], overlay="none")
        with pytest.raises(OSError):
            listen.sockets(settings)
