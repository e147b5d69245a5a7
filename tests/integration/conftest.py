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

HERE = Path(__file__).parent
LabFactory = Callable[..., Lab]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration; skip them all when not root."""
    not_root = pytest.mark.skip(reason="the lab needs root (network namespaces, veth, tc)")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(not_root)


def unique_name() -> str:
    """A lab name no other run uses: 't' and 3 hex characters."""
    return "t" + secrets.token_hex(2)[:3]


@pytest.fixture(scope="module")
def lab_factory() -> Iterator[LabFactory]:
    """make(nodes=2, wan_delay=None, wan_loss=None, overlay="wireguard", join=True,
    bare=True) -> Lab.

    Every lab made is taken down when the module ends, whatever happened.
    """
    labs: list[Lab] = []
    roots: list[Path] = []

    def make(nodes: int = 1, **options: Any) -> Lab:
        # Bare by default: these tests make the flavors and images they use themselves
        # (seeding costs only ~0.4 s, measured, but would collide with their names).
        options.setdefault("bare", True)
        name = unique_name()
        # Not under pytest's 0700 directory: the nodes' QEMU, dnsmasq and metadata users
        # must pass through every parent of a node's state directory, as on a real host.
        root = Path(tempfile.mkdtemp(prefix=f"atwill-lab-{name}-", dir="/tmp"))
        root.chmod(0o711)
        roots.append(root)
        lab = Lab(name, root / "lab")
        # fence=False: nodes get no fence device, so a partitioned node is never powered
        # off (the HA monitor's fencing fails, nothing is evacuated): the autonomous case.
        lab.fence_devices = options.pop("fence", True)
        labs.append(lab)
        lab.up(nodes, **options)
        return lab

    try:
        yield make
    finally:
        errors = []
        for lab in reversed(labs):
            try:
                lab.down()
            except Exception as error:  # noqa: BLE001 - take every lab down, then report
                errors.append(f"{lab.name}: {error!r}")
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
        assert not errors, errors


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, lab_factory: LabFactory) -> Lab:
    """One lab per module, built from the module's LAB dict (default: 2 joined nodes)."""
    options = dict(getattr(request.module, "LAB", {"nodes": 2}))
    return lab_factory(**options)
