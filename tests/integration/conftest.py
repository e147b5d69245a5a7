"""The lab as a fixture: every test module here asks for the lab it needs."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.lab import Lab
from tests.integration.forked_lab import ForkedLab, forking

HERE = Path(__file__).parent
LabFactory = Callable[..., Lab]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration; skip them all when not root. Put the
    modules that share a lab (SHARE_LAB, same LAB) next to each other, in name order."""
    not_root = pytest.mark.skip(reason="the lab needs root (network namespaces, veth, tc)")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(not_root)
    first: dict[object, int] = {}
    for index, item in enumerate(items):
        first.setdefault(_group(item), index)
    items.sort(key=lambda item: first[_group(item)])  # stable: each module keeps its order


def _shared_key(module: Any) -> str | None:
    """The lab shape a module shares with others (SHARE_LAB = True), else None."""
    if module is None or not getattr(module, "SHARE_LAB", False):
        return None
    return repr(sorted(getattr(module, "LAB", {"nodes": 2}).items()))


def _group(item: pytest.Item) -> object:
    module = getattr(item, "module", None)
    return _shared_key(module) or (module.__name__ if module else item.nodeid)


def unique_name() -> str:
    """A lab name no other run uses: 't' and 3 hex characters."""
    return "t" + secrets.token_hex(2)[:3]


def _make_lab(nodes: int = 1, **options: Any) -> tuple[Lab, Path]:
    """A new lab and the directory it lives in; on failure lab.up has taken it down."""
    # Bare by default: these tests make the flavors and images they use themselves
    # (seeding costs only ~0.4 s, measured, but would collide with their names).
    options.setdefault("bare", True)
    name = unique_name()
    # Not under pytest's 0700 directory: the nodes' QEMU, dnsmasq and metadata users
    # must pass through every parent of a node's state directory, as on a real host.
    root = Path(tempfile.mkdtemp(prefix=f"atwill-lab-{name}-", dir="/tmp"))
    root.chmod(0o711)
    lab = ForkedLab(name, root / "lab") if forking() else Lab(name, root / "lab")
    # fence=False: nodes get no fence device, so a partitioned node is never powered
    # off (the HA monitor's fencing fails, nothing is evacuated): the autonomous case.
    lab.fence_devices = options.pop("fence", True)
    try:
        lab.up(nodes, **options)
    except BaseException:
        _close_forks(lab)
        shutil.rmtree(root, ignore_errors=True)
        raise
    return lab, root


def _close_forks(lab: Lab) -> None:
    if isinstance(lab, ForkedLab):
        lab.close_forks()


def _take_down(lab: Lab, root: Path) -> str | None:
    """Take the lab down and remove its directory; the error, if any, as text."""
    try:
        _close_forks(lab)  # before its host goes: the fork servers run there
        lab.down()
        return None
    except Exception as error:  # noqa: BLE001 - the caller reports it after the rest
        return f"{lab.name}: {error!r}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


class SharedLab:
    """The lab of a run of modules with SHARE_LAB = True and the same LAB (collection puts
    them next to each other): one lab up (13-19 s, measured) for the run instead of one
    per module. A module that leaves a node not up, or the controller dead, gets a new lab.
    Each such module makes uniquely named things (or reuses the guest image, vms.py), and
    cleans up its servers, as any module must."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.lab: Lab | None = None
        self.root: Path | None = None
        self.members: tuple[frozenset[str], dict[str, str]] | None = None

    def get(self, key: str, options: dict[str, Any]) -> Lab:
        if self.key == key and self.lab is not None and self._healthy(options):
            return self.lab
        self.release()
        self.lab, self.root = _make_lab(**options)
        self.key = key
        self.members = self._members()
        return self.lab

    def _members(self) -> tuple[frozenset[str], dict[str, str]]:
        """The lab's node hosts and the cloud's node ids by name: a module that re-joined
        a name from another host (test_rejoin: node1's name on a spare) leaves every node
        up, but node1's VMs would run outside node1's namespace."""
        assert self.lab is not None
        hosts = frozenset(h.name for h in self.lab.state.nodes())
        return hosts, {node["name"]: node["id"] for node in self.lab.node_list()}

    def _healthy(self, options: dict[str, Any]) -> bool:
        assert self.lab is not None
        nodes = options.get("nodes", 1)
        try:
            states = self.lab.node_states()
            members = self._members()
        except Exception:  # noqa: BLE001 - the controller is gone: a new lab
            return False
        return (states == {f"node{i}": "up" for i in range(1, nodes + 1)}
                and members == self.members)

    def release(self) -> None:
        if self.lab is None or self.root is None:
            return
        lab, root = self.lab, self.root
        self.key = self.lab = self.root = self.members = None
        error = _take_down(lab, root)
        assert error is None, error


SHARED = SharedLab()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a module's own fixtures are gone: take the shared lab down unless the next
    test's module shares it."""
    yield
    if SHARED.key is not None and (
            nextitem is None or _shared_key(getattr(nextitem, "module", None)) != SHARED.key):
        SHARED.release()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Also when -x or ^C stopped the run inside a run of sharing modules."""
    SHARED.release()


@pytest.fixture(scope="module")
def lab_factory() -> Iterator[LabFactory]:
    """make(nodes=2, wan_delay=None, wan_loss=None, overlay="wireguard", join=True,
    bare=True) -> Lab.

    Every lab made is taken down when the module ends, whatever happened.
    """

    made: list[tuple[Lab, Path]] = []

    def make(nodes: int = 1, **options: Any) -> Lab:
        lab, root = _make_lab(nodes, **options)
        made.append((lab, root))
        return lab

    try:
        yield make
    finally:
        errors = [e for lab, root in reversed(made) if (e := _take_down(lab, root))]
        assert not errors, errors


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, lab_factory: LabFactory) -> Lab:
    """One lab per module, built from the module's LAB dict (default: 2 joined nodes); or,
    with SHARE_LAB = True, one for the run of such modules with the same LAB (SharedLab)."""
    options = dict(getattr(request.module, "LAB", {"nodes": 2}))
    key = _shared_key(request.module)
    if key is not None:
        return SHARED.get(key, options)
    SHARED.release()  # a lab of its own: no idle lab beside it
    return lab_factory(**options)
