"""Renewing the node's short-lived certificate over its own mTLS channel, before it expires."""

from __future__ import annotations

import datetime as dt
import logging

import httpx

from .. import pki
from .client import check
from .config import AgentConfig, write_private

log = logging.getLogger("atwill.agent")


def due(cert_pem: bytes, now: dt.datetime | None = None) -> bool:
    """Whether less than half of the certificate's life is left."""
    start, end = pki.cert_lifetime(cert_pem)
    now = now or dt.datetime.now(dt.UTC)
    return end - now < (end - start) / 2


def renew(http: httpx.Client, config: AgentConfig) -> str:
    """Ask for a new certificate from the same key and store it; its expiry (ISO)."""
    csr = pki.make_csr(config.key.read_bytes(), config.name)
    reply = check(http.post(f"/cluster/v1/nodes/{config.node_id}/certificate",
                            json={"csr": csr.decode()})).json()
    write_private(config.cert, reply["certificate"].encode())
    log.info("node certificate renewed, valid until %s", reply["expires_at"])
    return str(reply["expires_at"])
