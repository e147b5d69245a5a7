"""The real `openstack` and `atwill` CLIs for tests, run in processes forked from one
that has imported them.

A fresh `openstack` process spends about 0.8 s of CPU importing openstackclient,
openstacksdk and keystoneauth and scanning their plugins before it sends a request, and
`atwill token create` 1 s importing SQLAlchemy, Alembic and the models (measured on the
2-core CI machine, where the API tier runs over a thousand such commands). A fork server
per program imports all that once; each command then runs in a child forked from it, with
its own arguments, environment, working directory, stdin, stdout and stderr, through the
console script's own entry point, and exits as the console script would.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
# What each program imports ahead: its modules, and the entry point groups of its command
# plugins. Anything else loads on first use, as in a fresh process.
WARM: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openstack": (("openstackclient.shell",), (
        "openstack.cli", "openstack.common", "openstack.compute.v2", "openstack.identity.v3",
        "openstack.image.v2", "openstack.network.v2", "openstack.volume.v3",
        "openstack.orchestration.v1", "openstack.cli.base", "openstack.cli.extension")),
    "atwill": (("atwill.cli.main", "atwill.controller.state",
                "atwill.controller.cluster.tokens"), ()),
}


class ForkServer:
    """One warm interpreter (started lazily) running a program's commands, asked over a
    Unix socket."""

    def __init__(self, program: str = "openstack", prefix: tuple[str, ...] = ()) -> None:
        self.program = program
        self.prefix = prefix  # e.g. `ip netns exec NS`: the server, and so each child, in NS
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="atwill-osc-"))
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-c",
             "from atwill.devcloud_forkserver import serve; serve()",
             str(self.dir / "sock"), self.program],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            self.proc.wait(30)
            raise RuntimeError(f"{self.program} fork server did not start:\n"
                               + (self.dir / "server.log").read_text(errors="replace"))

    def run(self, args: list[str], env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess:
        """Like subprocess.run(args, capture_output=True, text=True, env=env)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start({k: v for k, v in env.items() if not k.startswith("OS_")})
        assert self.dir is not None
        out = tempfile.NamedTemporaryFile(dir=self.dir, delete=False)  # noqa: SIM115
        err = tempfile.NamedTemporaryFile(dir=self.dir, delete=False)  # noqa: SIM115
        out.close()
        err.close()
        request = {"argv": args, "env": env, "cwd": os.getcwd(),
                   "stdout": out.name, "stderr": err.name}
        try:
            code = self._ask(request, timeout, args)
            return subprocess.CompletedProcess(
                args, code, Path(out.name).read_text(errors="replace"),
                Path(err.name).read_text(errors="replace"))
        finally:
            os.unlink(out.name)
            os.unlink(err.name)

    def _ask(self, request: dict, timeout: float, args: list[str]) -> int:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.dir / "sock"))  # type: ignore[operator]
            sock.sendall(json.dumps(request).encode() + b"\n")
            reader = sock.makefile("rb")
            deadline = time.monotonic() + timeout
            pid = None
            try:
                pid = int(reader.readline())
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                answer = reader.readline()
            except TimeoutError:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(args, timeout) from None
        if not answer:
            return -signal.SIGKILL  # the child died before it could say its status
        return int(answer)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the server exits at end of file
            self.proc.stdout.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def warm(program: str) -> None:
    """Import what the program's commands import."""
    modules, groups = WARM[program]
    for name in modules:
        import_module(name)
    for group in groups:
        for point in entry_points(group=group):
            with contextlib.suppress(Exception):
                point.load()


def serve() -> None:
    """Fork one child per connection; exit when stdin closes (the tests ended)."""
    path, program = sys.argv[1:3]
    # As in the console script: its directory heads sys.path (entry points are found by
    # scanning sys.path), and cliff names the program after argv[0] at import.
    sys.path[0] = str(BIN)
    sys.argv = [str(BIN / program)]
    warm(program)
    if program == "openstack":
        from atwill.devcloud_quickpoll import install

        install()  # `--wait` polls every 0.2 s, not 5 s
    (point,) = entry_points(group="console_scripts", name=program)
    main = point.load()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        _accept(listener, main)
    finally:
        # Also when the test process was killed before it could close() the server.
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def _accept(listener: socket.socket, main: Callable[[], Any]) -> None:
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not sys.stdin.buffer.read1(1):
            return
        if listener in ready:
            conn, _ = listener.accept()
            sys.stderr.flush()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child(conn, main)
            conn.close()


def _child(conn: socket.socket, main: Callable[[], Any]) -> None:
    code = 1
    try:
        request = json.loads(conn.makefile("rb").readline())
        conn.sendall(f"{os.getpid()}\n".encode())
        _redirect(request)
        code = _exit_status(main)
    finally:
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()  # as the interpreter does at exit (logging, pools)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"{code}\n".encode())
        os._exit(0)


def _redirect(request: dict) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, request["stdout"], os.O_WRONLY),
                            (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [str(BIN / Path(request["argv"][0]).name), *request["argv"][1:]]


def _exit_status(main: Callable[[], Any]) -> int:
    """What `sys.exit(main())` in the console script makes of main()'s outcome."""
    try:
        result = main()
    except SystemExit as exit_:
        result = exit_.code
    except BaseException:  # noqa: BLE001 - the interpreter prints it and exits 1
        traceback.print_exc()
        return 1
    if result is None:
        return 0
    if isinstance(result, int):
        return result & 0xFF
    print(result, file=sys.stderr)
    return 1


_servers: dict[str, ForkServer] = {}


def cli_forks(program: str = "openstack") -> ForkServer:
    """This process's fork server for the program, closed when the process exits."""
    if program not in _servers:
        _servers[program] = ForkServer(program)
        atexit.register(_servers[program].close)
    return _servers[program]
