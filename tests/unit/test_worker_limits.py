"""Login throttles split among the controller's workers (review finding: each worker kept
the whole allowance, so N workers let a client try N times as many passwords)."""

from __future__ import annotations

from atwill import config
from atwill.cli.controller_cmd import per_worker_limits


def test_each_worker_keeps_its_share_and_never_nothing(tmp_path) -> None:
    conf = config.load(tmp_path, login_rate=10.0, login_burst=40, password_checks=4)
    two = per_worker_limits(conf, 2)
    assert (two.login_rate, two.login_burst, two.password_checks) == (5.0, 20, 2)
    eight = per_worker_limits(conf, 8)
    assert (eight.login_rate, eight.login_burst, eight.password_checks) == (1.25, 5, 1)
    odd = per_worker_limits(config.load(tmp_path, login_burst=3, password_checks=1), 2)
    assert (odd.login_burst, odd.password_checks) == (2, 1)
    assert (conf.login_rate, conf.login_burst) == (10.0, 40)  # the settings stay as written
    unlimited = per_worker_limits(config.load(tmp_path, login_rate=0.0), 4)
    assert unlimited.login_rate == 0.0  # 0 stays "unlimited"
