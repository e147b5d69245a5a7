"""QemuDriver offers every method of the Hypervisor interface, with the same parameters."""

from __future__ import annotations

import inspect

from atwill.agent.hypervisor.base import Hypervisor
from atwill.agent.hypervisor.qemu import QemuDriver


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")}


def test_qemu_driver_implements_the_interface() -> None:
    wanted = _methods(Hypervisor)
    assert {"start", "stop", "state", "delete", "uuids"} <= set(wanted)
    offered = _methods(QemuDriver)
    for name, signature in wanted.items():
        assert name in offered, f"QemuDriver lacks {name}"
        assert list(offered[name].parameters) == list(signature.parameters), name
        for param, spec in signature.parameters.items():
            assert offered[name].parameters[param].default == spec.default, (name, param)


def test_the_interface_is_not_qemu_specific() -> None:
    # A second driver or a test double must not need QMP or QEMU's own attributes.
    assert "qmp_timeout" not in inspect.getsource(Hypervisor)
