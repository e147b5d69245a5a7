"""A Python interpreter for ansible's modules that starts warm (test_ansible_openstack.py).

Each openstack.cloud task is a Python process that spends about 0.5 s of CPU importing
openstacksdk and keystoneauth before its first request, 31 tasks a test. `WarmPython`
starts one interpreter that has imported them (with the same environment, so the same
sitecustomize) and writes a small `python` for ansible_python_interpreter: run as
`python AnsiballZ_x.py`, it hands its arguments, environment, working directory and
standard streams to that interpreter, which forks a child to run the script as
`__main__` (runpy) and answers with its exit status. Nothing of ansible is imported
ahead: the module and its module_utils load from the AnsiballZ payload as usual.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# The interpreter the modules run in: what it imports ahead, then a loop of forks.
SERVER = r'''
import json, os, runpy, signal, socket, sys, traceback
import openstack, openstack.connection, openstack.config  # noqa: F401
import openstack.compute.v2._proxy, openstack.network.v2._proxy  # noqa: F401
import openstack.block_storage.v3._proxy, openstack.image.v2._proxy  # noqa: F401
import openstack.identity.v3._proxy, keystoneauth1.identity.v3  # noqa: F401

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(16)
print("ready", flush=True)


def run(conn):
    msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 3)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    request = json.loads(data)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    code = 0
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as done:
        if isinstance(done.code, int) or done.code is None:
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    conn.sendall(bytes([code & 255]))
    os._exit(code & 255)


while True:
    conn, _ = server.accept()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        server.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            run(conn)
        finally:
            os._exit(1)
    conn.close()
'''

# The `python` ansible runs: -I -S, so it starts in milliseconds.
CLIENT = r'''#!{python} -IS
import json, os, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.connect({sock!r})
socket.send_fds(conn, [b"x"], [0, 1, 2])
conn.sendall(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ),
                         "cwd": os.getcwd()}}).encode())
conn.shutdown(socket.SHUT_WR)
code = conn.recv(1)
sys.exit(code[0] if code else 1)
'''


class WarmPython:
    """The warm interpreter (started here, with env) and the `python` that reaches it."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.sock = directory / "warm.sock"
        self.python = directory / "python"
        self.python.write_text(CLIENT.format(python=sys.executable, sock=str(self.sock)))
        self.python.chmod(0o755)
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.sock)],
                                     env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     cwd=directory)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == b"ready\n", line
        self.proc.stdout.close()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.unlink(missing_ok=True)


def _smoke() -> None:  # pragma: no cover - by hand: python -m tests.api.warm_python
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        warm = WarmPython(Path(tmp), dict(os.environ))
        script = Path(tmp) / "s.py"
        script.write_text("import sys, openstack; print('hi', sys.argv, sys.stdin.read());"
                          "sys.exit(3)")
        start = time.monotonic()
        proc = subprocess.run([str(warm.python), str(script), "a"], input="in",
                              capture_output=True, text=True)
        print(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        warm.close()


if __name__ == "__main__":
    _smoke()
