"""The real `openstack` CLI for tests, run in processes forked from one that imported it.

A fresh `openstack` process spends about 0.8 s of CPU importing openstackclient,
openstacksdk and keystoneauth and scanning their plugins before it sends a request
(measured on the 2-core CI machine, where the API tier runs over a thousand of them).
A fork server imports all that once; each command then runs in a child forked from it,
with its own arguments, environment, working directory, stdin, stdout and stderr, through
the same `openstackclient.shell.main` as the console script, and exits like it.
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
from pathlib import Path

BIN = Path(sys.executable).parent
# The command modules the tests use, imported ahead; others load on first use as usual.
WARM_GROUPS = ("openstack.cli", "openstack.common", "openstack.compute.v2",
               "openstack.identity.v3", "openstack.image.v2", "openstack.network.v2",
               "openstack.volume.v3", "openstack.orchestration.v1", "openstack.cli.base",
               "openstack.cli.extension")


class ForkServer:
    """One warm interpreter (started lazily) serving `openstack` runs over a Unix socket."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="atwill-osc-"))
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from atwill.devcloud_forkserver import serve; serve()",
             str(self.dir / "sock")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            self.proc.wait(30)
            raise RuntimeError("openstack fork server did not start:\n"
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


def warm() -> None:
    """Import what every `openstack` command imports, and the commands the tests use."""
    from importlib.metadata import entry_points

    import openstackclient.shell  # noqa: F401

    for group in WARM_GROUPS:
        for point in entry_points(group=group):
            with contextlib.suppress(Exception):
                point.load()


def serve() -> None:
    """Fork one child per connection; exit when stdin closes (the tests ended)."""
    path = sys.argv[1]
    # As in the console script: its directory heads sys.path (entry points are found by
    # scanning sys.path), and cliff names the program after argv[0] at import.
    sys.path[0] = str(BIN)
    sys.argv = [str(BIN / "openstack")]
    warm()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        _accept(listener)
    finally:
        # Also when the test process was killed before it could close() the server.
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def _accept(listener: socket.socket) -> None:
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
                _child(conn)
            conn.close()


def _child(conn: socket.socket) -> None:
    code = 1
    try:
        request = json.loads(conn.makefile("rb").readline())
        conn.sendall(f"{os.getpid()}\n".encode())
        _redirect(request)
        code = _main(request["argv"])
    finally:
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
    sys.argv = [str(BIN / "openstack"), *request["argv"][1:]]


def _main(argv: list[str]) -> int:
    """What `sys.exit(main())` in the console script makes of main()'s outcome."""
    from openstackclient.shell import main

    try:
        result = main(argv[1:])
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


_server: ForkServer | None = None


def cli_forks() -> ForkServer:
    """This process's fork server, closed when the process exits."""
    global _server
    if _server is None:
        _server = ForkServer()
        atexit.register(_server.close)
    return _server
