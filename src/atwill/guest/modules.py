"""Which kernel modules the guest loads, and in what order (dependencies first)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from atwill.hostlib.run import run

# What the guest needs beyond the built-in drivers of Debian's kernel: virtio for the
# disk and network, ATA + SCSI CD-ROM + ISO 9660 (or VFAT) for a config drive, and the
# ACPI button with evdev so that the power button reaches user space.
WANTED = ("virtio_pci", "virtio_net", "virtio_blk",
          "ata_piix", "sr_mod", "isofs", "vfat", "nls_cp437", "nls_ascii",
          "button", "evdev")


class ModuleCycleError(ValueError):
    """Module dependencies form a cycle, so no load order exists."""


def normalize(name: str) -> str:
    """The kernel treats - and _ in module names alike; use _."""
    return name.strip().replace("-", "_")


def load_order(wanted: Iterable[str], depends: Callable[[str], list[str]],
               available: Callable[[str], bool] = lambda name: True) -> list[str]:
    """Every wanted module and its dependencies, each after all it depends on.

    Modules that are not available (built into the kernel) are left out, and so is
    anything only they would pull in. The order is stable: wanted order, then each
    module's own dependency order.
    """
    order: list[str] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done or not available(name):
            return
        if name in visiting:
            raise ModuleCycleError(" -> ".join([*visiting, name]))
        visiting.append(name)
        for dep in depends(name):
            visit(normalize(dep))
        visiting.pop()
        done.add(name)
        order.append(name)

    for name in wanted:
        visit(normalize(name))
    return order


def parse_depends(text: str) -> list[str]:
    """The names in modinfo's depends field ("a,b" or empty)."""
    return [normalize(part) for part in text.replace("\n", ",").split(",") if part.strip()]


def module_files(modules_dir: Path) -> dict[str, Path]:
    """Module name -> .ko file under a /lib/modules/VERSION tree."""
    return {normalize(path.name.removesuffix(".ko")): path
            for path in sorted(modules_dir.rglob("*.ko"))}


def modinfo_depends(path: Path) -> list[str]:
    """What modinfo says the module file depends on."""
    return parse_depends(run(["modinfo", "-F", "depends", str(path)]).stdout)


def resolve(modules_dir: Path, wanted: Iterable[str] = WANTED) -> list[tuple[str, Path]]:
    """(name, file) of each module to load, in load order, from an unpacked kernel tree."""
    files = module_files(modules_dir)
    order = load_order(wanted, lambda name: modinfo_depends(files[name]),
                       available=lambda name: name in files)
    return [(name, files[name]) for name in order]
