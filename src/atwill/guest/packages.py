"""Debian packages fetched with apt-get download and unpacked with dpkg-deb into a cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from atwill.hostlib.run import HostCommandError, run

KERNEL_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# What apt would install changes only with its package lists or preferences.
APT_STATE = (Path("/var/lib/apt/lists"), Path("/etc/apt/preferences.d"),
             Path("/etc/apt/preferences"))


@dataclass(frozen=True)
class Package:
    """One unpacked package: its real name, version and where its files are."""

    name: str
    version: str
    root: Path

    @property
    def ident(self) -> str:
        """name=version, what the build digest and the cache directory name depend on."""
        return f"{self.name}={self.version}"


def cache_dir() -> Path:
    """$ATWILL_CACHE_DIR, else /var/cache/atwill for root, else ~/.cache/atwill."""
    if env := os.environ.get("ATWILL_CACHE_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/atwill")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "atwill"


def parse_control(text: str) -> tuple[str, list[str]]:
    """The Version and the package names of Depends from `apt-cache show` output."""
    version = re.search(r"^Version:\s*(\S+)", text, re.M)
    depends = re.search(r"^Depends:\s*(.+)$", text, re.M)
    names = []
    if depends:
        for alternative in depends.group(1).split(","):
            names.append(alternative.split("|")[0].split("(")[0].strip())
    return (version.group(1) if version else ""), [name for name in names if name]


def resolve(name: str) -> tuple[str, str]:
    """The (package, version) apt would install; a linux-image metapackage is followed."""
    shown = run(["apt-cache", "show", "--no-all-versions", name], timeout=60).stdout
    version, depends = parse_control(shown)
    if not version:
        raise HostCommandError(["apt-cache", "show", name], 100, f"no candidate for {name}")
    # linux-image-amd64 only depends on the versioned image package, which has the files.
    images = [dep for dep in depends if dep.startswith("linux-image-")]
    if name == KERNEL_PACKAGE and images:
        return resolve(images[0])
    return name, version


def apt_stamp(paths: tuple[Path, ...] | None = None) -> str:
    """Names and times of apt's lists and preferences: changes whenever a candidate may."""
    parts = []
    for path in APT_STATE if paths is None else paths:
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        # Only the files: apt touches its partial/ directory and lock on every download.
        for entry in entries:
            if not entry.is_file() or entry.name == "lock":
                continue
            try:
                parts.append(f"{entry.name}:{entry.stat().st_mtime_ns}")
            except OSError:
                continue
    return ";".join(parts)


def resolve_cached(name: str, cache: Path) -> tuple[str, str]:
    """resolve(name), remembered in the cache while apt's lists stay the same.

    Without a binary package cache apt-cache parses every list on each call (seconds on
    a busy machine), which would dominate a build that finds everything cached.
    """
    memo = cache / "resolved.json"
    stamp = apt_stamp()
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if known.get("stamp") != stamp:
        known = {"stamp": stamp, "packages": {}}
    if name not in known["packages"]:
        known["packages"][name] = list(resolve(name))
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_suffix(".partial")
        partial.write_text(json.dumps(known, indent=1))
        partial.replace(memo)
    real, version = known["packages"][name]
    return real, version


def fetch(name: str, cache: Path) -> Package:
    """Download and unpack the candidate of name once; later calls reuse the unpacked tree."""
    try:
        real, version = resolve_cached(name, cache)
    except HostCommandError:
        # Without package lists (offline), whatever was unpacked before still serves.
        found = _unpacked(cache, name)
        if found is None:
            raise
        return found
    root = cache / "packages" / _dirname(real, version)
    if not (root / ".unpacked").exists():
        _download_and_unpack(real, version, root)
    return Package(real, version, root)


def _dirname(name: str, version: str) -> str:
    return f"{name}_{version.replace(':', '%3a')}"


def _download_and_unpack(name: str, version: str, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        _download_in(tmp, name, version)
        debs = sorted(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise HostCommandError(["apt-get", "download", name], 1, f"found {len(debs)} .deb")
        unpacked = Path(tmp) / "root"
        run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], timeout=300)
        (unpacked / ".unpacked").write_text(f"{name}={version}\n")
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)


def _download_in(directory: str, name: str, version: str) -> None:
    # apt-get download writes into the working directory, and run() has no cwd argument.
    # apt drops privileges to _apt when it can; _apt cannot write into our directory.
    run(["sh", "-c", 'cd "$1" && exec apt-get download -q -o APT::Sandbox::User=root "$2"',
         "sh", directory, f"{name}={version}"], timeout=600)


def _unpacked(cache: Path, name: str) -> Package | None:
    pattern = "linux-image-*" if name == KERNEL_PACKAGE else f"{name}_*"
    found = sorted(p for p in (cache / "packages").glob(pattern) if (p / ".unpacked").exists())
    if not found:
        return None
    real, _, version = (found[-1] / ".unpacked").read_text().strip().partition("=")
    return Package(real, version, found[-1])
