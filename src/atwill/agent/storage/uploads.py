"""A storage node copies a volume into an image (os-volume_upload_image) and uploads it.

The request comes in the volume's desired "source" under "upload" ({image_id,
disk_format}): the way volume-from-image came in, run backwards. The copy is made in
the image's format beside the volumes (.uploads/), from the volume file when nobody
has it open, or through its export's daemon when it is attached (a forced upload of an
in-use volume: one instant's copy while the guest writes on), then sent to the
controller over the node's mutual TLS. A failure is reported, so the controller puts
the volume back and deletes the image; only an unreachable controller is tried again
at the next converge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.client import ClusterError, check, tls_context
from atwill.agent.storage.volumes import COPY_TIMEOUT, check_id, making
from atwill.hostlib.run import run

log = logging.getLogger("atwill.agent.storage")
FORMATS = ("raw", "qcow2")
CHUNK = 1 << 20
# backup(target): a qcow2 copy of the volume at one instant, made by its export's daemon.
Backup = Callable[[Path], None]


class Unreachable(Exception):
    """The controller could not be reached: try the upload again later."""


class Controller:
    """The two calls an upload makes: send the data, or say why there is none."""

    def __init__(self, node_id: str, base_url: Callable[[], str], ca: Path, cert: Path,
                 key: Path) -> None:
        self.node_id, self.base_url = node_id, base_url
        self.ca, self.cert, self.key = ca, cert, key

    def _path(self, image_id: str) -> str:
        return f"{self.base_url()}/cluster/v1/nodes/{self.node_id}/volume-uploads/{image_id}"

    def send(self, image_id: str, data: Path) -> None:
        try:
            with httpx.Client(verify=tls_context(self.ca, self.cert, self.key),
                              timeout=COPY_TIMEOUT) as http:
                check(http.put(f"{self._path(image_id)}/file", content=_chunks(data), headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(data.stat().st_size)}))
        except httpx.TransportError as err:
            raise Unreachable(str(err)) from err

    def failed(self, image_id: str, message: str) -> None:
        try:
            with httpx.Client(verify=tls_context(self.ca, self.cert, self.key),
                              timeout=60) as http:
                check(http.post(f"{self._path(image_id)}/error", json={"message": message}))
        except ClusterError as err:
            if err.status >= 500:
                raise Unreachable(err.message) from err
            # 404: no longer pending (the volume was reset, or the upload finished).
        except httpx.TransportError as err:
            raise Unreachable(str(err)) from err


class VolumeUploads:
    """The uploads this node was asked for, each done (or reported failed) once."""

    def __init__(self, work_dir: Path, controller: Controller | None) -> None:
        self.work_dir, self.controller = work_dir, controller
        self._answered: set[str] = set()  # image ids the controller has an answer for

    def retain(self, volumes: dict[str, dict[str, Any]]) -> None:
        """Forget the answered uploads the desired state no longer asks for."""
        self._answered &= {u["image_id"] for v in volumes.values()
                           if isinstance(u := requested(v), dict)}

    def run(self, volume: dict[str, Any], source: Path, backup: Backup | None) -> None:
        """Copy and upload the volume if its desired state asks for it (in its lane)."""
        upload = requested(volume)
        if upload is None or self.controller is None or upload["image_id"] in self._answered:
            return
        image_id = check_id(upload["image_id"])
        try:
            try:
                fmt = upload.get("disk_format")
                if fmt not in FORMATS:
                    raise ValueError(f"disk format {fmt!r} is not one of {', '.join(FORMATS)}")
                target = self.work_dir / f"{image_id}.{fmt}"
                copy_out(source, fmt, target, backup, self.work_dir)
                try:
                    self.controller.send(image_id, target)
                finally:
                    target.unlink(missing_ok=True)
                log.info("volume %s uploaded to image %s", volume["id"], image_id)
            except Unreachable:
                raise
            except Exception as err:  # noqa: BLE001 - every failure is reported
                message = f"{type(err).__name__}: {err}"[:4096]
                log.warning("uploading volume %s to image %s failed: %s", volume["id"],
                            image_id, message)
                self.controller.failed(image_id, message)
        except Unreachable as err:
            log.warning("upload of volume %s to image %s: the controller is out of reach "
                        "(%s); will retry", volume["id"], image_id, err)
            return
        self._answered.add(image_id)


def requested(volume: dict[str, Any]) -> dict[str, Any] | None:
    upload = (volume.get("source") or {}).get("upload")
    return upload if isinstance(upload, dict) and isinstance(upload.get("image_id"), str) \
        else None


def copy_out(source: Path, fmt: str, target: Path, backup: Backup | None,
             work_dir: Path) -> None:
    """The volume at source as a standalone image of format fmt at target."""
    work_dir.mkdir(mode=0o700, exist_ok=True)
    target.unlink(missing_ok=True)  # a crash's leftover: made again
    with making(target) as partial:
        if backup is None:
            _convert(source, partial, fmt, shared=True)
            return
        staged = work_dir / f".{target.stem}.backup.qcow2"
        staged.unlink(missing_ok=True)
        try:
            backup(staged)
            _convert(staged, partial, fmt, shared=False)
        finally:
            staged.unlink(missing_ok=True)


def _convert(source: Path, target: Path, fmt: str, shared: bool) -> None:
    # -U: the volume file may be held by a daemon exporting it to nobody yet.
    run(["qemu-img", "convert", "-q", *(["-U"] if shared else []), "-f", "qcow2",
         "-O", fmt, str(source), str(target)], timeout=COPY_TIMEOUT)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            yield chunk
