"""The pure pieces of NBD exports' TLS: the authorised DN, the revocation list the
controller signs for them, and when a running daemon must load a new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from atwill import pki
from atwill.agent.storage import exports
from atwill.agent.storage.exports import Export, Exports, client_dn, daemon_argv
from atwill.controller.db.models import Node, RevokedCertificate
from atwill.controller.volume.export_crl import export_crl, removed_serials

EXPORT = Export("0f8f2b4e-9c9b-4f7e-8f67-5b7f0c2a4d11", "id-a", "node-a", "10.0.0.2", 10809)


def test_the_export_authorises_exactly_the_client_nodes_dn() -> None:
    assert client_dn("node-a") == "CN=node-a"
    for bad in ("node-a,O=x", "CN=node-a", "", "a b"):
        with pytest.raises(ValueError):
            client_dn(bad)
    argv = daemon_argv(EXPORT, Path("/v/vol"), Path("/e/x"))
    assert "authz-simple,id=authz0,identity=CN=node-a" in argv
    server = next(a for a in argv if a.startswith("addr.type=fd"))
    assert "tls-creds=tls0" in server and "tls-authz=authz0" in server
    assert any("endpoint=server,verify-peer=on" in a for a in argv)


def test_a_revocation_list_is_compared_by_what_it_revokes(tmp_path: Path) -> None:
    pki.create_ca(tmp_path)
    first, again = pki.crl_pem(tmp_path, ["1a", "2b"]), pki.crl_pem(tmp_path, ["2b", "1a"])
    assert pki.crl_serials(first) == pki.crl_serials(again) == {"1a", "2b"}
    assert pki.crl_serials(pki.crl_pem(tmp_path, [])) == frozenset()
    with pytest.raises(ValueError):
        pki.crl_serials(b"not a list")


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Node.metadata.create_all(engine)
    with Session(engine) as made:
        yield made
    engine.dispose()


def test_exports_refuse_removed_nodes_certificates_not_renewed_ones(session: Session,
                                                                      tmp_path: Path) -> None:
    joined = dt.datetime(2026, 1, 10)
    session.add(Node(name="node-a", created_at=joined))
    session.add_all([
        RevokedCertificate(serial="aa", node_name="node-a",  # the earlier node-a's removal
                           revoked_at=joined - dt.timedelta(hours=1)),
        RevokedCertificate(serial="bb", node_name="node-a",  # this node-a's renewal
                           revoked_at=joined + dt.timedelta(days=7)),
        RevokedCertificate(serial="cc", node_name="gone", revoked_at=joined)])
    session.flush()
    assert removed_serials(session) == ["aa", "cc"]
    assert export_crl(session, tmp_path) is None  # no CA key here
    pki.create_ca(tmp_path)
    signed = export_crl(session, tmp_path)
    assert signed is not None and pki.crl_serials(signed.encode()) == {"aa", "cc"}
    assert export_crl(session, tmp_path) == signed  # signed once per set of serials


def _served(tmp_path: Path, serials: list[str]) -> Exports:
    """Exports whose one daemon's TLS directory holds a list of serials."""
    pki.create_ca(tmp_path / "ca")
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"certificate")
    made = Exports(tmp_path / "exports", tmp_path / "ca" / "ca.pem", cert, tmp_path / "key")
    tls = made.directory(EXPORT.volume_id, EXPORT.node_id) / "tls"
    tls.mkdir(parents=True)
    (tls / "server-cert.pem").write_bytes(b"certificate")
    (tls / "ca-crl.pem").write_bytes(pki.crl_pem(tmp_path / "ca", serials))
    return made


def test_a_daemon_loads_a_changed_list_once_its_client_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _served(tmp_path, ["aa"])
    links = {"up": False}
    monkeypatch.setattr(exports, "connected", lambda port, tables: links["up"])
    made.set_crl(pki.crl_pem(tmp_path / "ca", ["aa"]).decode())  # signed again, same list
    assert not made._stale(EXPORT)
    made.set_crl("garbage")  # ignored: the list before stays
    assert not made._stale(EXPORT)
    made.set_crl(pki.crl_pem(tmp_path / "ca", ["aa", "dd"]))
    assert made._stale(EXPORT)
    links["up"] = True
    assert not made._stale(EXPORT)
