"""The test harness's quicker client polling caps the intervals, nothing else."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import time
from openstack import utils as sdk_utils
from osc_lib import utils as osc_utils
from atwill.devcloud_quickpoll import POLL, install

install()
install()  # twice: still one wrapper
slept = []
time.sleep = slept.append
gen = sdk_utils.iterate_timeout(10, "never", wait=5)
next(gen), next(gen)
gen = sdk_utils.iterate_timeout(10, "never", wait=0.05)
next(gen), next(gen)
states = iter(["build", "build", "active"])
assert osc_utils.wait_for_status(lambda _id: type("S", (), {"status": next(states)})(), "x")
print(slept == [POLL, 0.05, POLL, POLL], slept)
"""


def test_install_caps_sdk_and_osc_waits_at_poll() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.startswith("True"), out
