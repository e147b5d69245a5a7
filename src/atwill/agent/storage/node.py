"""The storage manager as the agent builds it: its node's certificate, images from the
controller (as instances fetch theirs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.client import tls_context
from atwill.agent.config import AgentConfig
from atwill.agent.storage.reconcile import FetchImage, StorageManager


def storage_manager(config: AgentConfig, base_url: Callable[[], str]) -> StorageManager | None:
    """The node's storage manager, or None when it is no storage node."""
    if config.storage_path is None:
        return None
    fetch = controller_fetch(config, base_url)
    return StorageManager(config.storage_path, config.ca, config.cert, config.key, fetch)


def controller_fetch(config: AgentConfig, base_url: Callable[[], str]) -> FetchImage:
    """Fetch an image as instances do: GET /cluster/v1/nodes/{me}/images/{id}, over mTLS."""
    def fetch(source: dict[str, Any], dest: Path) -> None:
        url = f"{base_url()}/cluster/v1/nodes/{config.node_id}/images/{source['id']}"
        context = tls_context(config.ca, config.cert, config.key)
        with httpx.stream("GET", url, verify=context, timeout=60) as resp:
            resp.raise_for_status()
            with open(dest, "wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
    return fetch
