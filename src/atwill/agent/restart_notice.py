"""The agent's restart notice: before a deliberate stop, it tells the controller when it
will be back (core/restart_notice), so its node is neither fenced nor evacuated meanwhile.

N comes from ATWILL_RESTART_NOTICE (join.env, which systemd reads too), else agent.yaml's
restart_notice, else 60 s; it is bounded to 1-600 s, and 0 gives no notice (a stop is
then treated as a crash, as before).
"""

from __future__ import annotations

import logging
import os
import time

import httpx

from ..core import restart_notice
from .client import ClusterError, check, client, tls_context
from .config import AgentConfig

log = logging.getLogger("atwill.agent")
ENV = "ATWILL_RESTART_NOTICE"
# A stopping agent does not wait long for an answer: systemd's stop timeout runs.
TIMEOUT = 5.0
REASON = "agent restarting"


def configured(config: AgentConfig) -> float:
    """The notice's N, bounded (0: none)."""
    raw = os.environ.get(ENV)
    seconds = config.restart_notice
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            log.warning("%s=%r is not a number of seconds; %g s is used", ENV, raw, seconds)
    return restart_notice.bounded(seconds)


def give(config: AgentConfig, seconds: float, run: str | None = None) -> float | None:
    """Send the notice; the monotonic time by which the agent promised to be back (its
    lease keeper waits for it), or None when no notice was given."""
    if seconds <= 0:
        return None
    sent = time.monotonic()
    try:
        context = tls_context(config.ca, config.cert, config.key)
        with client(config.controller_urls, context, timeout=TIMEOUT) as http:
            check(http.post(f"/cluster/v1/nodes/{config.node_id}/restart-notice",
                            json={"seconds": seconds, "reason": REASON,
                                  **({restart_notice.RUN_KEY: run} if run else {})}))
    except (httpx.HTTPError, ClusterError, OSError) as err:
        log.warning("could not tell the controller that this agent restarts (%s): the node "
                    "is fenced if its agent is not back within the HA down threshold", err)
        return None
    log.info("told the controller this agent restarts, back within %g s", seconds)
    return sent + seconds
