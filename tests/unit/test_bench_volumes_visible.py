"""The guest-visible attach bench's pure parts: the guest's script and the statistics."""

from __future__ import annotations

import subprocess

from atwill.bench import volumes_visible as vv


def test_script_is_valid_sh() -> None:
    subprocess.run(["sh", "-n"], input=vv.SCRIPT.encode(), check=True)


def test_script_reports_virtio_disks_only(tmp_path) -> None:
    """The script's matching, run against a fake kernel log and sysfs."""
    sysfs = tmp_path / "sys" / "block" / "vdb"
    sysfs.mkdir(parents=True)
    (sysfs / "serial").write_text("0000000a-1a7e-4c00-8")
    body = vv.SCRIPT.replace("/dev/console", "/dev/stdout").replace(
        "cat /dev/kmsg", "cat kmsg").replace("/sys/block", str(tmp_path / "sys" / "block"))
    (tmp_path / "kmsg").write_text(
        "6,1,100,-;virtio_net virtio1 eth0: renamed\n"
        "5,2,200,-;virtio_blk virtio3: [vdb] 2097152 512-byte logical blocks (1.07 GB)\n"
        "5,3,300,-;sd 0:0:0:0: [sda] 100 blocks\n")
    out = subprocess.run(["sh", "-c", body], cwd=tmp_path, capture_output=True, text=True,
                         timeout=10, check=True).stdout
    assert out.splitlines() == ["VPLUG READY", "VPLUG DISK vdb 0000000a-1a7e-4c00-8"]


def test_stats_nearest_rank() -> None:
    got = vv.stats([i / 1000 for i in range(1, 21)])
    assert got == {"min_ms": 1.0, "median_ms": 10.5, "p95_ms": 19.0, "max_ms": 20.0}
    assert vv.stats([0.25])["p95_ms"] == 250.0
