"""POST /cluster/v1/nodes/{id}/certificate: a node renews its short-lived certificate.

Over the node's own mTLS channel only, from the same key, for the same name; the
old certificate is revoked as superseded (so it is still recognised as this node's
for one more renewal if the answer was lost), a removed node is refused.
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography import x509
from fastapi import APIRouter, Request
from sqlalchemy import func, select

from ...api.cluster import CertificateRenewal, RenewedCertificate
from ...core.errors import BadRequest
from ...pki import cert_lifetime, public_key_der, sign_client_csr
from ..db.base import iso, utcnow
from ..db.models import RevokedCertificate
from ..peercert import client_cert
from ..revision import bump
from ..service import controller
from .nodecert import calling_node

log = logging.getLogger("atwill.cluster")

router = APIRouter()


@router.post("/v1/nodes/{node_id}/certificate", response_model=RenewedCertificate,
             summary="Renew this node's certificate from a CSR of its existing key")
def certificate_post(node_id: str, request: Request, body: CertificateRenewal) -> dict:
    ctl = controller(request)
    try:
        csr = x509.load_pem_x509_csr(body.csr.encode())
    except ValueError:
        raise BadRequest("Invalid certificate request: it is not a PEM CSR.") from None
    der = client_cert(request.scope) or b""
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id, allow_superseded=True)
        if public_key_der(csr) != public_key_der(x509.load_der_x509_certificate(der)):
            raise BadRequest("A renewal must keep the node's key: the request's public key "
                             "is not the one of the certificate it was sent with.")
        try:
            pem, serial = sign_client_csr(ctl.settings.path("pki"), body.csr.encode(),
                                          node.name)
        except ValueError as err:
            raise BadRequest(f"Invalid certificate request: {err}.") from None
        old = node.cert_serial
        if old and session.get(RevokedCertificate, old) is None:
            # Strictly after the node's creation (times are stored to the second): that is
            # what tells a superseded certificate from one revoked by an earlier removal;
            # and after this node's previous renewal, so the latest one is unambiguous.
            second = dt.timedelta(seconds=1)
            previous = session.scalar(select(func.max(RevokedCertificate.revoked_at)).where(
                RevokedCertificate.node_name == node.name))
            when = max(utcnow(), node.created_at + second,
                       previous + second if previous else node.created_at)
            session.add(RevokedCertificate(serial=old, node_name=node.name, revoked_at=when))
        node.cert_serial = serial
        bump(session)
        name = node.name
    expires = cert_lifetime(pem)[1].replace(tzinfo=None)
    log.info("node %s renewed its certificate: %s replaces %s, until %s", name, serial, old,
             iso(expires))
    return {"certificate": pem.decode(), "expires_at": iso(expires)}
