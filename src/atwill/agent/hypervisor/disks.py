"""The node's image cache (fetched once, checksum-verified, shared) and instance overlays."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from atwill.core import imageformat
from atwill.hostlib.run import run

log = logging.getLogger(__name__)
CHUNK = 1 << 20
GIB = 1 << 30
_IMAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Fetch = Callable[[Path], None]
# Where in the cache the overlay templates are kept (overlay_from_template).
TEMPLATES = ".overlays"
# image_info's answers, by file and its identity (any write moves mtime and ctime).
INFO_KEPT = 64
_INFO: dict[tuple, dict] = {}
_INFO_LOCK = threading.Lock()


QEMU_FORMATS = imageformat.QEMU_FORMATS


class ChecksumError(ValueError):
    """A fetched image does not match the checksum the image service gave."""


class UnsafeImageError(ValueError):
    """A cached image is not its declared format or names files outside itself."""


class ImageTooLargeError(ValueError):
    """An image's virtual disk is larger than the disk it is to fill (a flavor's root
    disk, a volume): growing past what was asked (and billed) is refused."""


def ensure_cached(cache_dir: Path, image_id: str, checksum_md5: str | None, fetch: Fetch,
                  sha512: str | None = None) -> Path:
    """cache_dir/<image_id>, fetched with fetch(temp path) once per node and verified first."""
    if not _IMAGE_ID.fullmatch(image_id):
        raise ValueError(f"not an image id: {image_id!r}")
    cached = cache_dir / image_id
    with _locked(cache_dir, image_id):
        # Whoever held the lock before us may have fetched it already.
        if cached.exists():
            return cached
        partial = cache_dir / f".{image_id}.partial"
        try:
            fetch(partial)
            partial.chmod(0o600)  # a tenant's image: lent to its QEMUs' group at launch
            _verify(partial, checksum_md5, sha512)
            partial.replace(cached)
        finally:
            partial.unlink(missing_ok=True)
    return cached


def gc(cache_dir: Path, in_use: set[str]) -> list[str]:
    """Remove cached images no instance uses (skipping any being fetched); return their ids."""
    removed: list[str] = []
    if not cache_dir.is_dir():
        return removed
    for path in sorted(cache_dir.iterdir()):
        if path.name.startswith(".") or path.name in in_use or not path.is_file():
            continue
        with _locked(cache_dir, path.name, wait=False) as held:
            if held:
                path.unlink(missing_ok=True)
                removed.append(path.name)
    drop_templates(cache_dir / TEMPLATES, {p.name for p in cache_dir.iterdir()})
    return removed


def create_overlay(base: Path, path: Path, size_gb: int, base_format: str = "qcow2") -> None:
    """A qcow2 overlay on base, size_gb large; a flavor disk of 0 means "the image's
    size", as in Nova. An image larger than a flavor disk that is not 0 is refused
    (ImageTooLargeError): Nova refuses it at the API, but the API may not know the size
    (a peer's image metadata can lie) and the node reads it from the file itself."""
    args = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format,
            "-b", str(base.resolve()), str(path)]
    size = check_fits(base, base_format, size_gb, "flavor's root disk") if size_gb > 0 \
        else virtual_size(base, base_format)
    if size_gb * GIB > size:
        args.append(f"{size_gb}G")
    run(args, timeout=60)


def overlay_from_template(base: Path, path: Path, size_gb: int, base_format: str,
                          templates: Path) -> None:
    """create_overlay's file at path, copied from one that qemu-img made once for the same
    base, format and size (in templates): byte for byte what qemu-img writes (nothing in
    a new overlay is the instance's own), without a qemu-img run on the way to each start.
    The fit is checked as create_overlay checks it (from the cached qemu-img info)."""
    size = check_fits(base, base_format, size_gb, "flavor's root disk") if size_gb > 0 \
        else virtual_size(base, base_format)
    grown = size_gb if size_gb * GIB > size else 0
    key = hashlib.sha256(f"{base.resolve()}\0{base_format}\0{grown}\0{size}".encode())
    template = templates / f"{base.name}.{key.hexdigest()[:16]}.qcow2"
    backing = str(base.resolve())
    if template.is_file() and not template_ok(template, grown * GIB or size, backing):
        # Cut short (written, renamed, then the power went) or otherwise damaged: every
        # start of this image would copy it. Made again below.
        log.warning("overlay template %s is damaged: made again", template.name)
        template.unlink(missing_ok=True)
    if not template.is_file():
        templates.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = templates / f".{template.name}.{os.getpid()}.{threading.get_ident()}"
        try:
            create_overlay(base, partial, size_gb, base_format)
            sync(partial)  # on the disk before its name is: never a short template
            partial.replace(template)
            sync(templates)
        finally:
            partial.unlink(missing_ok=True)
    shutil.copyfile(template, path)


QCOW2_MAGIC = b"QFI\xfb"


def template_ok(path: Path, virtual: int, backing: str) -> bool:
    """Whether path is a whole qcow2 overlay of `virtual` bytes on `backing`, as qemu-img
    wrote it: its header's magic, version, size and backing file name, and the L1 and
    refcount tables it points to inside the file (a truncated file ends before them)."""
    try:
        with path.open("rb") as f:
            header = f.read(1 << 16)
            length = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(header) < 72 or header[:4] != QCOW2_MAGIC:
        return False
    version = int.from_bytes(header[4:8], "big")
    backing_offset = int.from_bytes(header[8:16], "big")
    backing_size = int.from_bytes(header[16:20], "big")
    cluster_bits = int.from_bytes(header[20:24], "big")
    size = int.from_bytes(header[24:32], "big")
    l1_size = int.from_bytes(header[36:40], "big")
    l1_offset = int.from_bytes(header[40:48], "big")
    refcount_offset = int.from_bytes(header[48:56], "big")
    refcount_clusters = int.from_bytes(header[56:60], "big")
    if version not in (2, 3) or not 9 <= cluster_bits <= 21 or size != virtual:
        return False
    name = header[backing_offset:backing_offset + backing_size]
    return (name.decode(errors="replace") == backing
            and l1_offset + l1_size * 8 <= length
            and 0 < refcount_offset + (refcount_clusters << cluster_bits) <= length)


def sync(path: Path) -> None:
    """fsync a file or a directory (its entries) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_templates(templates: Path, keep: set[str]) -> None:
    """Remove the overlay templates of base images not in keep (their ids)."""
    if not templates.is_dir():
        return
    for template in templates.iterdir():
        if not template.name.startswith(".") and template.name.rsplit(".", 2)[0] not in keep:
            template.unlink(missing_ok=True)


def check_fits(image: Path, fmt: str, size_gb: int, disk: str) -> int:
    """image's virtual size (qemu-img's, read as fmt) once it fits in size_gb GiB;
    ImageTooLargeError, naming disk ("volume", ...), when it does not."""
    size = virtual_size(image, fmt)
    if size > size_gb * GIB:
        raise ImageTooLargeError(
            f"Image {image.name} refused on this node: its virtual size is {size} bytes "
            f"({-(-size // GIB)} GiB), larger than the {disk} of {size_gb} GiB.")
    return size


def verify_image(image: Path, disk_format: str) -> str:
    """QEMU's format name for image once it is found safe; UnsafeImageError otherwise.

    The header is read first (nothing else is opened), then qemu-img, told the
    declared format so it never guesses, must agree: no backing file, no data
    file, one vmdk extent that is the image itself, the declared format.
    """
    fmt = QEMU_FORMATS.get(disk_format)
    if fmt is None:
        raise UnsafeImageError(f"Image {image.name}: disk_format {disk_format} cannot be "
                               "booted on this node.")
    try:
        with image.open("rb") as data:
            imageformat.check(data, disk_format)
    except imageformat.UnsafeImage as err:
        raise UnsafeImageError(f"Image {image.name} refused on this node: {err}") from None
    problem = info_problem(image_info(image, fmt), fmt, image)
    if problem:
        raise UnsafeImageError(f"Image {image.name} refused on this node: {problem}.")
    return fmt


def verify_overlay(disk: Path) -> None:
    """UnsafeImageError if the instance's own disk names an external data file or has
    features we do not know: its QEMU can write that header, and root opens the disk
    again (each start, each snapshot). Its backing file is always given explicitly."""
    with disk.open("rb") as data:
        problems = imageformat.overlay_problems(data.read(imageformat.HEAD_BYTES))
    if problems:
        raise UnsafeImageError(f"Instance disk {disk.parent.name} refused on this node: "
                               f"{'; '.join(problems)}.")


def info_problem(info: dict, fmt: str, image: Path) -> str | None:
    """What in qemu-img's JSON description of image makes it unsafe to boot, if anything."""
    if info.get("format") != fmt:
        return f"qemu-img reads it as {info.get('format')}, not {fmt}"
    if "backing-filename" in info or "full-backing-filename" in info:
        return "it has a backing file"
    specific = info.get("format-specific", {}).get("data", {})
    if specific.get("data-file"):
        return "it has an external data file"
    if fmt == "vmdk":
        extents = specific.get("extents", [])
        if len(extents) != 1:
            return f"it has {len(extents)} vmdk extents, not one"
        named = Path(extents[0].get("filename", ""))
        if named.resolve() != image.resolve():
            return "its vmdk extent is not the image file itself"
    return None


def virtual_size(image: Path, image_format: str = "qcow2") -> int:
    """The image's virtual disk size in bytes."""
    size: int = image_info(image, image_format)["virtual-size"]
    return size


def image_info(image: Path, fmt: str) -> dict:
    """qemu-img's JSON description of image read as fmt, run again only when the file
    changed: a warm start verified its cached base and sized its overlay with two runs
    of qemu-img (each tens of ms on busy cores) for a file that never changes."""
    stat = image.stat()
    key = (str(image.absolute()), fmt, stat.st_dev, stat.st_ino, stat.st_size,
           stat.st_mtime_ns, stat.st_ctime_ns)
    with _INFO_LOCK:
        known = _INFO.get(key)
    if known is not None:
        return dict(known)
    done = run(["qemu-img", "info", "--output", "json", "-f", fmt, str(image)], timeout=60)
    info: dict = json.loads(done.stdout)
    with _INFO_LOCK:
        _INFO[key] = info
        while len(_INFO) > INFO_KEPT:
            _INFO.pop(next(iter(_INFO)))
    return dict(info)


def http_fetch(url: str, dest: Path, token: str | None = None,
               client: httpx.Client | None = None, timeout: float = 60.0) -> None:
    """Stream url (e.g. /image/v2/images/{id}/file) into dest, with an X-Auth-Token if given."""
    headers = {"X-Auth-Token": token} if token else {}
    owned = client is None
    session = client or httpx.Client(timeout=timeout)
    try:
        with session.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
    finally:
        if owned:
            session.close()


def image_fetcher(image_url: str, image_id: str, token: str | None = None,
                  client: httpx.Client | None = None) -> Fetch:
    """A fetch for ensure_cached reading the image data from the image service at image_url."""
    url = f"{image_url.rstrip('/')}/v2/images/{image_id}/file"
    return lambda dest: http_fetch(url, dest, token, client)


def _verify(path: Path, md5: str | None, sha512: str | None) -> None:
    digests = {"md5": hashlib.md5(usedforsecurity=False), "sha512": hashlib.sha512()}
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            for digest in digests.values():
                digest.update(chunk)
    for name, expected in (("md5", md5), ("sha512", sha512)):
        if expected and digests[name].hexdigest() != expected.lower():
            raise ChecksumError(f"{path.name}: {name} {digests[name].hexdigest()}, "
                                f"expected {expected}")


@contextlib.contextmanager
def _locked(cache_dir: Path, image_id: str, wait: bool = True) -> Iterator[bool]:
    # Lock files are never removed: removing one while another process waits on it
    # would let a third process lock a new file and fetch in parallel.
    locks = cache_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / image_id, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
