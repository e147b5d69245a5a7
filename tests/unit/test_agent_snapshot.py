"""The agent's snapshot requests: one thread per instance, each image uploaded once, failures
reported; the copy itself (QEMU) is faked here and tested for real in tests/host."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from atwill.agent import snapshot
from atwill.agent.hypervisor.qemu import QemuDriver

UUID, IMAGE = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
BASE = f"/cluster/v1/nodes/n1/snapshots/{IMAGE}"


class Controller:
    """A fake controller: records each call and answers with the status given for it."""

    def __init__(self, put: int | Exception = 204, error: int = 204) -> None:
        self.put, self.error = put, error
        self.calls: list[tuple[str, str, bytes]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, request.read()))
        if request.method == "PUT":
            if isinstance(self.put, Exception):
                raise self.put
            return httpx.Response(self.put, json={"error": {"message": "no"}})
        return httpx.Response(self.error, json={"error": {"message": "no"}})


@pytest.fixture
def driver(tmp_path: Path) -> QemuDriver:
    made = QemuDriver(tmp_path / "instances", sockets_dir=tmp_path / "qmp")
    made.paths(UUID).directory.mkdir(parents=True)
    return made


def manager(driver: QemuDriver, fake: Controller) -> snapshot.Snapshots:
    return snapshot.Snapshots(driver, "n1", lambda: httpx.Client(
        base_url="https://ctl", transport=httpx.MockTransport(fake.handle)))


def settle(snaps: snapshot.Snapshots) -> None:
    deadline = time.monotonic() + 10
    while snaps.busy(UUID):
        assert time.monotonic() < deadline, "the snapshot thread never finished"
        time.sleep(0.01)


def test_uploaded_once_however_often_asked(driver: QemuDriver,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    taken: list[Path] = []

    def take(_driver: QemuDriver, uuid: str, dest: Path) -> None:
        gate.wait(5)
        dest.write_bytes(b"qcow2 data")
        taken.append(dest)

    monkeypatch.setattr(snapshot, "take", take)
    fake = Controller()
    snaps = manager(driver, fake)
    snaps.request(UUID, IMAGE)
    assert snaps.busy(UUID)
    snaps.request(UUID, IMAGE)  # a repeated desired state while it runs
    gate.set()
    settle(snaps)
    snaps.request(UUID, IMAGE)  # and after it is done
    settle(snaps)
    assert fake.calls == [("PUT", BASE, b"qcow2 data")]
    assert len(taken) == 1 and not taken[0].exists()


def test_a_failed_copy_is_reported(driver: QemuDriver,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def take(_driver: QemuDriver, uuid: str, dest: Path) -> None:
        raise snapshot.DriverError("no space left")

    monkeypatch.setattr(snapshot, "take", take)
    fake = Controller()
    snaps = manager(driver, fake)
    snaps.request(UUID, IMAGE)
    settle(snaps)
    assert [(m, p) for m, p, _ in fake.calls] == [("POST", f"{BASE}/error")]
    assert "no space left" in json.loads(fake.calls[0][2])["message"]
    assert IMAGE in snaps.done


@pytest.mark.parametrize("put, error, done", [
    (409, 204, True),                                # refused upload: reported
    (404, 404, True),                                # no longer pending: nothing to do
    (httpx.ConnectError("unreachable"), 204, False),  # out of reach: asked again later
    (500, 503, False),                               # the report failed too: retried
], ids=["refused", "gone", "unreachable", "server-error"])
def test_upload_failures(driver: QemuDriver, monkeypatch: pytest.MonkeyPatch,
                         put: int | Exception, error: int, done: bool) -> None:
    monkeypatch.setattr(snapshot, "take", lambda _d, _u, dest: dest.write_bytes(b"x"))
    snaps = manager(driver, Controller(put, error))
    snaps.request(UUID, IMAGE)
    settle(snaps)
    assert (IMAGE in snaps.done) is done
    # Only a copy whose upload is still to be retried is kept.
    assert len(list(driver.paths(UUID).directory.iterdir())) == (0 if done else 1)


def test_a_retry_sends_the_kept_copy(driver: QemuDriver,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    copies: list[Path] = []

    def take(_driver: QemuDriver, uuid: str, dest: Path) -> None:
        dest.write_bytes(b"copy %d" % len(copies))
        copies.append(dest)

    monkeypatch.setattr(snapshot, "take", take)
    fake = Controller(httpx.ConnectError("unreachable"))
    snaps = manager(driver, fake)
    snaps.request(UUID, IMAGE)
    settle(snaps)
    fake.put = 204
    snaps.request(UUID, IMAGE)
    settle(snaps)
    assert len(copies) == 1 and fake.calls[-1] == ("PUT", BASE, b"copy 0")
    assert IMAGE in snaps.done and not list(driver.paths(UUID).directory.iterdir())
