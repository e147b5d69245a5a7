"""The storage node's pure parts: daemon arguments, ports, ids, free space, the export host."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from atwill import pki
from atwill.agent.storage import exports
from atwill.agent.storage.exports import Export, choose_port, daemon_argv, export_key
from atwill.agent.storage.reconcile import export_host, free_gb
from atwill.agent.storage.volumes import GIB, VolumeStore, check_id, convert_args

EXPORT = Export("0b7c2a5e-1111-4222-8333-944455556666", "node-uuid", "compute-1", "10.99.0.3",
                10811)


def _values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


def test_the_daemon_admits_only_the_client_node_over_tls() -> None:
    argv = daemon_argv(EXPORT, Path("/v/x.qcow2"), Path("/v/.exports/k"))
    objects = _values(argv, "--object")
    assert "tls-creds-x509,id=tls0,dir=/v/.exports/k/tls,endpoint=server,verify-peer=on," \
        f"priority={exports.TLS_PRIORITY}" in objects
    assert "authz-simple,id=authz0,identity=CN=compute-1" in objects
    assert _values(argv, "--nbd-server") == [
        "addr.type=fd,addr.str=3,tls-creds=tls0,tls-authz=authz0"]
    assert _values(argv, "--export") == [
        f"type=nbd,id=exp0,node-name=vol0,name={EXPORT.volume_id},writable=on"]
    # Without any capability, and never able to get one back.
    assert argv[:argv.index("qemu-storage-daemon")] == exports.NO_CAPS
    assert "--no-new-privs" in argv and "--bounding-set=-all" in argv


def test_the_export_picks_aes_gcm_first_for_every_client() -> None:
    """Its order, not the client's: a PSK session would otherwise take ChaCha20 (GnuTLS
    cannot pair an external PSK with AES-256-GCM's SHA-384), half as fast on AES-NI."""
    words = exports.TLS_PRIORITY.split(":")
    assert words[:2] == ["NORMAL", "%SERVER_PRECEDENCE"]
    ciphers = [w for w in words if w.startswith("+")]
    assert ciphers[0] == "+AES-128-GCM" and "-CIPHER-ALL" in words
    assert "," not in exports.TLS_PRIORITY  # one QEMU option value


def test_the_daemon_listens_with_nagle_off_for_every_client() -> None:
    """The socket handed to the daemon (exports.LISTEN_FD) has TCP_NODELAY, and so has
    each connection it accepts: QEMU 7.2's NBD server sets no option of its own."""
    with exports.listener("127.0.0.1", 0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    with exports.listener("127.0.0.1", 0) as busy, pytest.raises(OSError):
        exports.listener("127.0.0.1", busy.getsockname()[1])


def test_commas_in_paths_do_not_end_an_option() -> None:
    argv = daemon_argv(EXPORT, Path("/v/a,b.qcow2"), Path("/v"))
    assert "driver=file,node-name=file0,filename=/v/a,,b.qcow2" in _values(argv, "--blockdev")


@pytest.mark.parametrize("cn,host", [("a,id=x", "10.0.0.1"), ("", "10.0.0.1"),
                                     ("node", "10.0.0.1,port=1"), ("node", "host.example")])
def test_a_bad_client_name_or_address_is_refused(cn: str, host: str) -> None:
    bad = Export(EXPORT.volume_id, "n", cn, host, 10809)
    with pytest.raises((ValueError, OSError)):
        daemon_argv(bad, Path("/v/x"), Path("/v"))


def test_ports_are_kept_and_chosen_from_the_range() -> None:
    ports = range(10809, 10812)
    assert choose_port(set(), ports) == 10809
    assert choose_port({10809}, ports) == 10810
    assert choose_port({10809}, ports, preferred=10811) == 10811
    assert choose_port({10811}, ports, preferred=10811) == 10809  # taken by another export
    assert choose_port(set(), ports, preferred=20000) == 10809  # out of range
    assert choose_port(set(), ports, free=lambda port: port != 10809) == 10810
    with pytest.raises(RuntimeError, match="no free export port in 10809-10811"):
        choose_port({10809, 10810, 10811}, ports)


def test_export_directories_are_short_and_distinct() -> None:
    key = export_key("v1", "n1")
    assert len(key) == 16 and key != export_key("v1", "n2") == export_key("v1", "n2")


def test_ids_cannot_leave_the_storage_directory(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    assert store.volume("abc-1") == tmp_path / "abc-1.qcow2"
    assert store.snapshot("s-1") == tmp_path / "snapshots" / "s-1.qcow2"
    for bad in ("../etc/passwd", "a/b", "", ".hidden", "a" * 65):
        with pytest.raises(ValueError):
            check_id(bad)


def test_only_whole_volumes_are_listed(tmp_path: Path) -> None:
    for name in ("v1.qcow2", ".v2.qcow2.partial", "notes.txt", ".exports"):
        (tmp_path / name).touch()
    assert VolumeStore(tmp_path).volumes() == {"v1"}


def test_conversion_always_names_the_source_format() -> None:
    args = convert_args(Path("/i/img"), "raw", Path("/v/x"), shared=False)
    assert args[args.index("-f") + 1] == "raw" and args[args.index("-O") + 1] == "qcow2"
    assert "-U" not in args and "-U" in convert_args(Path("/a"), "qcow2", Path("/b"), True)


def test_free_space_counts_what_volumes_may_still_write() -> None:
    assert free_gb(10 * GIB, []) == 10
    assert free_gb(10 * GIB, [(4 * GIB, GIB), (2 * GIB, 2 * GIB)]) == 7
    assert free_gb(GIB, [(5 * GIB, 0)]) == 0


def test_exports_listen_on_the_overlay_address() -> None:
    assert export_host({"overlay": {"kind": "wireguard", "address": "10.99.0.2"}}) == \
        "10.99.0.2"
    assert export_host({"overlay": {"kind": "none", "address": None}}) == "127.0.0.1"
    assert export_host({}) == "127.0.0.1"


def test_node_certificates_can_serve_exports_under_their_name(tmp_path: Path) -> None:
    pki.create_ca(tmp_path)
    _, csr = pki.make_key_and_csr("stor1")
    pem, _ = pki.sign_client_csr(tmp_path, csr, "stor1")
    cert = x509.load_pem_x509_certificate(pem)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["stor1"]


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:2A49 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:2A4A 0100007F:D3C2 01 00000000:00000000 00:00000000 00000000     0
"""


def test_a_client_is_connected_only_on_an_established_connection() -> None:
    assert exports.connected(10826, TCP)  # 0x2A4A, ESTABLISHED
    assert not exports.connected(10825, TCP)  # 0x2A49, only listening
    assert not exports.connected(10809, TCP)


def test_an_export_for_attachment_keys_admits_those_keys_alone() -> None:
    keys = exports.psk_lines([f"atwill-att-b:{'b' * 64}", f"atwill-att-a:{'a' * 64}"])
    assert keys == (f"atwill-att-a:{'a' * 64}", f"atwill-att-b:{'b' * 64}")
    argv = daemon_argv(replace(EXPORT, psk=keys), Path("/v/x.qcow2"), Path("/v/.exports/k"))
    assert _values(argv, "--object") == [
        f"tls-creds-psk,id=tls0,dir=/v/.exports/k/tls,endpoint=server,"
        f"priority={exports.TLS_PRIORITY}"]
    assert _values(argv, "--nbd-server") == [
        "addr.type=fd,addr.str=3,tls-creds=tls0"]
    assert exports.psk_lines(None) == ()
    for bad in ("atwill-att-a", [f"a:{'A' * 64}"], [f"a b:{'a' * 64}"], ["x:1234"], [1]):
        with pytest.raises(ValueError, match="identity:hexkey"):
            exports.psk_lines(bad)
