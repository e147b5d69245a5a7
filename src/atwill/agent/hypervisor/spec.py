"""What one instance is (InstanceSpec) and the QEMU command line that runs it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from atwill.core import volume_devices
from atwill.core.imageformat import QEMU_FORMATS
from atwill.core.volume_devices import Volume

QEMU = "qemu-system-x86_64"
Accel = Literal["kvm", "tcg"]

# Image properties (hw_*) mapped to QEMU devices; anything else is refused, not guessed.
VIF_MODELS = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e",
              "rtl8139": "rtl8139", "ne2k_pci": "ne2k_pci"}
VIDEO_MODELS = {"none": None, "vga": "VGA", "cirrus": "cirrus-vga", "qxl": "qxl-vga",
                "virtio": "virtio-vga", "bochs": "bochs-display"}
DISK_BUSES = ("virtio", "scsi", "ide", "sata")
# pc (i440FX) is the default, as in Nova: its PIIX IDE is what small guests have drivers
# for (ata_piix), and the config drive is an IDE CD-ROM there.
MACHINES = ("pc", "q35")


@dataclass(frozen=True)
class Nic:
    """One guest NIC: its MAC, the host tap it is plugged into, and that tap's bridge."""

    mac: str
    tap: str
    mtu: int = 1500
    bridge: str | None = None


@dataclass(frozen=True)
class InstanceSpec:
    """Everything the node needs to run one instance."""

    uuid: str
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    # None when the instance boots from a volume (boot_index 0): no base image, no disk.
    image_path: Path | None
    image_format: str = "qcow2"
    nics: list[Nic] = field(default_factory=list)
    config_drive: Path | None = None
    accel: Accel = "tcg"
    cpu_mode: str | None = None
    pci_devices: list[str] = field(default_factory=list)
    # None: console.log in the instance directory, removed with the instance.
    console_log: Path | None = None
    hw: dict[str, str] = field(default_factory=dict)
    # Volumes attached over NBD (hot-plugged ones are written back here, so a restart
    # keeps them), and the root-only directory of the node's NBD client credentials.
    volumes: list[Volume] = field(default_factory=list)
    volume_creds: Path | None = None

    def to_json(self) -> str:
        """The spec as JSON, kept beside the instance so it can be started again."""
        return json.dumps(asdict(self), default=str, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> InstanceSpec:
        """The spec to_json wrote."""
        data: dict[str, Any] = json.loads(text)
        data["nics"] = [Nic(**nic) for nic in data.get("nics", [])]
        data["volumes"] = [Volume(**volume) for volume in data.get("volumes", [])]
        for key in ("image_path", "config_drive", "console_log", "volume_creds"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        return cls(**data)


@dataclass(frozen=True)
class InstancePaths:
    """Where one instance's files live on the node."""

    directory: Path
    disk: Path
    console_log: Path
    pidfile: Path
    qmp: Path
    spec: Path
    saved_state: Path
    config_drive: Path

    @classmethod
    def under(cls, instances_dir: Path, sockets_dir: Path, uuid: str) -> InstancePaths:
        """The layout: instances_dir/<uuid>/…, the QMP socket in sockets_dir (short paths)."""
        directory = instances_dir / uuid
        return cls(directory=directory, disk=directory / "disk.qcow2",
                   console_log=directory / "console.log", pidfile=directory / "qemu.pid",
                   qmp=sockets_dir / f"{uuid}.sock", spec=directory / "spec.json",
                   saved_state=directory / "saved.state",
                   config_drive=directory / "config-drive.iso")


def escape(value: object) -> str:
    """A value safe inside a QEMU option list, where a comma is written as two."""
    return str(value).replace(",", ",,")


SMBIOS = ("type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,"
          "family=Virtual Machine")


def qemu_argv(spec: InstanceSpec, paths: InstancePaths, incoming: bool = False,
              sandbox: bool = True, run_as: str | None = None) -> list[str]:
    """The full QEMU command line for spec. With incoming, QEMU waits for a saved state
    (migrate-incoming over QMP); with run_as, it drops root once its files are open."""
    machine = spec.hw.get("hw_machine_type", "pc")
    if machine not in MACHINES:
        raise ValueError(f"unsupported hw_machine_type {machine!r}")
    argv = [QEMU,
            "-name", f"guest={escape(spec.name)},debug-threads=on",
            "-uuid", spec.uuid,
            # As Nova's libvirt driver: cloud-init's OpenStack datasource (and ds-identify)
            # only ask the metadata service of a machine whose DMI says "OpenStack Nova".
            "-smbios", SMBIOS + f",serial={spec.uuid},uuid={spec.uuid}",
            "-machine", f"{machine},accel={spec.accel}",
            "-cpu", cpu_model(spec),
            "-smp", str(spec.vcpus),
            "-m", str(spec.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none",
            *_video(spec), *_disk(spec, paths), *_volumes(spec, paths), *_config_drive(spec),
            *_nics(spec), *_serial(spec, paths), *vfio_args(spec.pci_devices),
            "-qmp", f"unix:{escape(paths.qmp)},server=on,wait=off",
            "-daemonize", "-pidfile", str(paths.pidfile)]
    if sandbox:
        # On QEMU 7.2 elevateprivileges=deny makes -daemonize fail (setsid) and
        # spawn=deny kills it (fork: "Bad system call"). Denying both needs a launch
        # without -daemonize. elevateprivileges must stay allowed for -runas's setuid.
        argv += ["-sandbox", "on,obsolete=deny,resourcecontrol=deny"]
    if run_as is not None:
        # QEMU opens every disk, tap, chardev and socket as root, then becomes run_as: the
        # guest-facing process holds no capability and can open no root-only file.
        argv += ["-runas", run_as]
    if incoming:
        # The saved state arrives as a file descriptor over QMP (getfd): a QEMU that is no
        # longer root cannot open the state file itself, and no shell is involved.
        argv += ["-incoming", "defer"]
    return argv


def cpu_model(spec: InstanceSpec) -> str:
    """-cpu: host passthrough only with KVM; under TCG the richest emulated model."""
    if spec.accel == "kvm":
        return "host" if spec.cpu_mode == "host-passthrough" else "qemu64"
    return "max"


def vfio_args(addresses: list[str]) -> list[str]:
    """One vfio-pci device per host PCI address (full form 0000:3b:00.0)."""
    args: list[str] = []
    for address in addresses:
        args += ["-device", f"vfio-pci,host={address}"]
    return args


def _video(spec: InstanceSpec) -> list[str]:
    model = spec.hw.get("hw_video_model", "none")
    if model not in VIDEO_MODELS:
        raise ValueError(f"unsupported hw_video_model {model!r}")
    device = VIDEO_MODELS[model]
    return ["-vga", "none"] if device is None else ["-vga", "none", "-device", device]


def _volumes(spec: InstanceSpec, paths: InstancePaths) -> list[str]:
    creds = None if spec.volume_creds is None else str(spec.volume_creds)
    return volume_devices.command_line(spec.volumes, creds, str(psk_dir(paths)))


def psk_dir(paths: InstancePaths) -> Path:
    """Where the attachments' keys are while QEMU reads them (qemu.py removes them)."""
    return paths.directory / "nbd-psk"


def _disk(spec: InstanceSpec, paths: InstancePaths) -> list[str]:
    if spec.image_path is None or volume_devices.boots_from_volume(spec.volumes):
        return []  # booted from a volume: no local disk, as Nova's boot from volume
    bus = spec.hw.get("hw_disk_bus", "virtio")
    # The backing image is named here, never taken from the overlay's header: the header
    # is the instance's to write, and a name or format in it must not pick what QEMU opens.
    driver = QEMU_FORMATS.get(spec.image_format, spec.image_format)
    backing = (f"backing.driver={escape(driver)},"
               f"backing.file.driver=file,backing.file.filename={escape(spec.image_path)}")
    drive = ["-drive", f"file={escape(paths.disk)},format=qcow2,if=none,id=disk0,"
             f"discard=unmap,{backing}"]
    if bus == "virtio":
        return [*drive, "-device", "virtio-blk-pci,drive=disk0,bootindex=0"]
    if bus == "scsi":
        return [*drive, "-device", "virtio-scsi-pci,id=scsi0",
                "-device", "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0"]
    if bus in ("ide", "sata"):
        return [*drive, "-device", "ide-hd,drive=disk0,bootindex=0"]
    raise ValueError(f"unsupported hw_disk_bus {bus!r}")


def _config_drive(spec: InstanceSpec) -> list[str]:
    if spec.config_drive is None:
        return []
    # An IDE CD-ROM, as Nova attaches an iso9660 config drive; read-only either way.
    return ["-drive", f"file={escape(spec.config_drive)},format=raw,if=none,id=config,"
                      "media=cdrom,readonly=on",
            "-device", "ide-cd,drive=config"]


def _nics(spec: InstanceSpec) -> list[str]:
    model = spec.hw.get("hw_vif_model", "virtio")
    if model not in VIF_MODELS:
        raise ValueError(f"unsupported hw_vif_model {model!r}")
    args: list[str] = []
    for index, nic in enumerate(spec.nics):
        device = f"{VIF_MODELS[model]},netdev=net{index},mac={nic.mac}"
        if model == "virtio" and nic.mtu != 1500:
            # virtio-net tells the guest the MTU itself, before any DHCP answer.
            device += f",host_mtu={nic.mtu}"
        args += ["-netdev", f"tap,id=net{index},ifname={nic.tap},script=no,downscript=no",
                 "-device", device]
    return args


def _serial(spec: InstanceSpec, paths: InstancePaths) -> list[str]:
    log = spec.console_log or paths.console_log
    # append=on keeps the output of earlier boots, as `console log show` expects.
    return ["-chardev", f"file,id=serial0,path={escape(log)},append=on",
            "-serial", "chardev:serial0"]
