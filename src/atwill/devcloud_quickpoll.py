"""Quicker polling for the clients the tests run (the `openstack` CLI, Ansible's modules).

`openstack server ... --wait` looks at the server every 5 s (osc-lib's wait_for_status and
wait_for_delete) and openstacksdk's waits every 2-5 s (utils.iterate_timeout); a test's
fake node answers within a fraction of a second, so most of such a command's time was
spent asleep. install() makes them look every POLL seconds instead: the same requests, in
the same order, until the same state, only sooner. It is for the test harness only
(devcloud_forkserver and the Ansible test load it), never for a command a user runs;
ATWILL_TEST_CLI_QUICKPOLL=0 keeps the clients' own intervals (to compare, or to rule it out).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

POLL = 0.2  # seconds between two looks


def _capped(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs["sleep_time"] = min(kwargs.get("sleep_time", POLL), POLL)
        return fn(*args, **kwargs)
    return call


def install(osc: bool = True) -> None:
    """Cap openstacksdk's poll interval at POLL, and osc-lib's unless osc is False (it is
    not imported then: Ansible's modules do without it)."""
    if os.environ.get("ATWILL_TEST_CLI_QUICKPOLL", "1") == "0":
        return
    from openstack import utils as sdk_utils

    if getattr(sdk_utils.iterate_timeout, "_atwill_quick", False):
        return
    iterate_timeout = sdk_utils.iterate_timeout

    def quick(timeout: Any, message: str, wait: Any = 2) -> Any:
        return iterate_timeout(timeout, message, POLL if wait is None else min(wait, POLL))

    quick._atwill_quick = True  # type: ignore[attr-defined]
    sdk_utils.iterate_timeout = quick
    if not osc:
        return
    from osc_lib import utils as osc_utils

    osc_utils.wait_for_status = _capped(osc_utils.wait_for_status)
    osc_utils.wait_for_delete = _capped(osc_utils.wait_for_delete)
