from pathlib import Path

from cryptography import x509

from atwill import pki


def test_ca_and_server_certificate(tmp_path: Path) -> None:
    assert pki.create_ca(tmp_path) and not pki.create_ca(tmp_path)
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert pki.issue_server_cert(tmp_path, ["127.0.0.1", "localhost"])
    assert not pki.issue_server_cert(tmp_path, ["localhost", "127.0.0.1"])
    assert pki.issue_server_cert(tmp_path, ["127.0.0.1", "cloud.example"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "controller.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    pin = pki.ca_hash((tmp_path / "ca.pem").read_bytes())
    assert pin.startswith("sha256:") and len(pin) == 7 + 64
