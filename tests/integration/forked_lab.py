"""The lab the fixtures make: its `openstack` and `atwill` commands run in children forked
from warm interpreters in the controller host (atwill.devcloud_forkserver), not in fresh
processes.

A fresh `openstack` process spends ~1 s importing before it sends a request, and the lab
tests run hundreds (a console poll, a status poll, each create); forked, they are the same
CLIs, arguments, environment and namespace, and `--wait` polls every 0.2 s, not 5 s.
ATWILL_TEST_CLI_FORK=0 runs every command in a fresh process again.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from atwill.devcloud_forkserver import ForkServer
from atwill.lab import Lab, commands


def forking() -> bool:
    return os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1"


class ForkedLab(Lab):
    """A Lab whose controller-host CLIs run through fork servers in that host."""

    forks: dict[str, ForkServer] | None = None

    def _fork(self, program: str) -> ForkServer:
        if self.forks is None:
            self.forks = {}
        if program not in self.forks:
            prefix = tuple(self.namespace(self.state.controller.name).argv([]))
            self.forks[program] = ForkServer(program, prefix=prefix)
        return self.forks[program]

    def close_forks(self) -> None:
        for server in (self.forks or {}).values():
            server.close()
        self.forks = None

    def run_forked(self, program: str, argv: list[str], env: dict[str, str], check: bool,
             timeout: float) -> subprocess.CompletedProcess:
        proc = self._fork(program).run(argv, env, timeout)
        if check and proc.returncode != 0:
            raise commands.CommandError(argv, proc)
        return proc

    def openstack(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        ctl = self.state.controller
        env = commands.openstack_env(Path(ctl.state_dir) / "clouds.yaml")
        argv = [commands.OPENSTACK, "--os-cloud", "atwill", *args]
        proc = self.run_forked("openstack", argv, env, check, timeout)
        if check and commands.wants_json(args):
            return commands.parse(proc.stdout)
        return proc if not check else proc.stdout

    def atwill_ctl(self, *args: str, check: bool = True,
                   timeout: float = 60) -> subprocess.CompletedProcess:
        ctl = self.state.controller
        argv = [commands.ATWILL, *args, "--state-dir", ctl.state_dir]
        return self.run_forked("atwill", argv, dict(os.environ), check, timeout)

    def node_list(self) -> list[dict[str, Any]]:
        ctl = self.state.controller
        argv = commands.node_list(ctl.state_dir)
        return commands.parse(self.run_forked("atwill", argv, dict(os.environ), True,
                                        60).stdout) or []
