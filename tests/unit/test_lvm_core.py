"""The LVM thin backend's pure part (core/lvm.py): names, command lines, `lvs` reports.

LVM itself cannot run on these machines (no device-mapper); tests/host/test_lvm_thin.py
drives the real thing where it can.
"""

from __future__ import annotations

import json

import pytest

from atwill.core import lvm
from atwill.core.lvm import GIB, LvmNameError, ThinPool

POOL = ThinPool("vg0", "thin")


def test_a_pool_is_vg_or_vg_slash_pool() -> None:
    assert ThinPool.parse("vg0/thin") == POOL
    assert ThinPool.parse("data") == ThinPool("data", "data-pool")  # Cinder's default
    assert str(POOL) == "vg0/thin"


@pytest.mark.parametrize("spec", [
    "", "/", "vg/", "/pool", "-vg", "vg/-pool", "vg/a/b", ".", "..", "vg/..", "v g",
    "vg;rm", "vg/pool\n", "../etc", "vg/snapshot1", "vg/pvmove0", "vg/x_tmeta",
    "a" * 128, None, 7, ["vg"]])
def test_a_bad_pool_is_refused(spec: object) -> None:
    with pytest.raises(LvmNameError):
        ThinPool.parse(spec)


@pytest.mark.parametrize("ident", [
    "-rf", "--yes", "../x", "a/b", "/dev/sda", "a b", "a,b", "", "a" * 65, "a_tmeta",
    "é", "x\n", None, 3])
def test_an_unsafe_id_never_names_an_lv(ident: object) -> None:
    for name in (lvm.volume_lv, lvm.snapshot_lv, lvm.copy_lv):
        with pytest.raises(LvmNameError):
            name(ident)  # type: ignore[arg-type]


def test_names_and_devices_stay_in_the_group() -> None:
    vid = "0b9a3c1e-7d2f-4a51-9c1b-2f6e8d3a4b5c"
    assert lvm.volume_lv(vid) == f"volume-{vid}"
    # LVM reserves names that start with "snapshot": Cinder's leading underscore.
    assert lvm.snapshot_lv("s1") == "_snapshot-s1"
    assert POOL.device(lvm.volume_lv("v1")) == "/dev/vg0/volume-v1"
    assert POOL.lv("volume-v1") == "vg0/volume-v1"
    with pytest.raises(LvmNameError):
        POOL.device("../../etc/passwd")
    assert lvm.ident_of("volume-v1", lvm.VOLUME_PREFIX) == "v1"
    assert lvm.ident_of("_snapshot-s1", lvm.VOLUME_PREFIX) is None
    assert lvm.ident_of("volume-", lvm.VOLUME_PREFIX) is None
    assert lvm.ident_of("volume-a_b", lvm.VOLUME_PREFIX) is None


NO_SCAN = ["--config", "devices/scan_lvs=0"]


def test_command_lines() -> None:
    assert lvm.create_argv(POOL, "volume-v1", 10) == [
        "lvcreate", *NO_SCAN, "--yes", "--thin", "--virtualsize", "10g", "--name", "volume-v1",
        "--addtag", "atwill", "--setactivationskip", "n", "--activate", "y", "vg0/thin"]
    assert lvm.snapshot_argv(POOL, "volume-v1", "_snapshot-s1") == [
        "lvcreate", *NO_SCAN, "--yes", "--snapshot", "--name", "_snapshot-s1", "--addtag", "atwill",
        "--setactivationskip", "n", "--activate", "y", "vg0/volume-v1"]
    assert lvm.extend_argv(POOL, "volume-v1", 20) == [
        "lvextend", *NO_SCAN, "--size", "20g", "vg0/volume-v1"]
    assert lvm.remove_argv(POOL, "volume-v1") == [
        "lvremove", *NO_SCAN, "--yes", "--force", "vg0/volume-v1"]
    assert lvm.activate_argv(POOL, "volume-v1")[-1] == "vg0/volume-v1"
    assert lvm.lvs_argv(POOL) == [
        "lvs", *NO_SCAN, "--reportformat", "json", "--units", "b", "--nosuffix", "--options",
        lvm.LVS_FIELDS, "vg0"]
    assert lvm.write_image_argv("/c/img", "qcow2", "/dev/vg0/volume-v1") == [
        "qemu-img", "convert", "-q", "-n", "--target-is-zero", "-f", "qcow2", "-O", "raw",
        "/c/img", "/dev/vg0/volume-v1"]
    assert lvm.copy_out_argv("/dev/vg0/_copy-v1", "/w/x.qcow2") == [
        "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "/dev/vg0/_copy-v1",
        "/w/x.qcow2"]


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "10"])
def test_a_bad_size_is_refused(size: object) -> None:
    with pytest.raises(ValueError):
        lvm.create_argv(POOL, "volume-v1", size)  # type: ignore[arg-type]


def test_a_guessed_image_format_is_refused() -> None:
    with pytest.raises(ValueError):
        lvm.write_image_argv("/c/img", "", "/dev/vg0/volume-v1")
    with pytest.raises(ValueError):
        lvm.write_image_argv("/c/img", "vhd", "/dev/vg0/volume-v1")  # QEMU calls it vpc


def _lv(name: str, size: int, percent: str = "", pool: str = "thin", attr: str = "Vwi-a-tz--",
        tags: str = "atwill", vg: str = "vg0") -> dict[str, str]:
    return {"lv_name": name, "vg_name": vg, "lv_attr": attr, "lv_size": str(size),
            "pool_lv": pool, "data_percent": percent, "lv_tags": tags}


def _report(*rows: dict[str, str]) -> str:
    return json.dumps({"report": [{"lv": list(rows)}]})


LVS = _report(
    _lv("thin", 100 * GIB, "10.00", pool="", attr="twi-aotz--", tags=""),
    _lv("root", 20 * GIB, pool="", attr="-wi-ao----", tags=""),
    _lv("volume-v1", 10 * GIB, "50.00"),
    _lv("volume-v2", 4 * GIB, "0.00"),
    _lv("_snapshot-s1", 10 * GIB, "50.00"),
    _lv("volume-theirs", 8 * GIB, "0.00", tags=""),  # not tagged: someone else's
    _lv("volume-other", 8 * GIB, "0.00", pool="otherpool"),
    _lv("volume-x_y", 1 * GIB, "0.00"))


def test_parse_lvs_and_find_ours() -> None:
    lvs = lvm.parse_lvs(LVS)
    assert sorted(lvm.ours(lvs, POOL, lvm.VOLUME_PREFIX)) == ["v1", "v2"]
    assert list(lvm.ours(lvs, POOL, lvm.SNAPSHOT_PREFIX)) == ["s1"]
    v1 = lvm.ours(lvs, POOL, lvm.VOLUME_PREFIX)["v1"]
    assert (v1.size, v1.allocated, v1.active) == (10 * GIB, 5 * GIB, True)


def test_json_std_numbers_and_tag_lists_parse_too() -> None:
    text = json.dumps({"report": [{"lv": [{
        "lv_name": "volume-v1", "vg_name": "vg0", "lv_attr": "Vwi---tz--", "lv_size": 1073741824,
        "pool_lv": "thin", "data_percent": 25.5, "lv_tags": ["atwill", "x"]}]}]})
    (lv,) = lvm.parse_lvs(text)
    assert (lv.size, lv.data_percent, lv.tags, lv.active) == (GIB, 25.5, ("atwill", "x"), False)


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"report": 1}', '{"report": [{"lv": [1]}]}',
    _report(_lv("volume-v1", 1).copy() | {"lv_size": "12G"})])
def test_a_bad_lvs_report_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        lvm.parse_lvs(text)


def test_capacity_counts_every_volume_as_full() -> None:
    lvs = lvm.parse_lvs(LVS)
    # 90 GiB free in the pool; v1 may still write 5, v2 4; the snapshot nothing.
    assert lvm.capacity(lvs, POOL) == (100, 81)
    tiny = lvm.parse_lvs(_report(_lv("thin", 10 * GIB, "90.00", pool="", attr="twi-aotz--"),
                                 _lv("volume-v1", 50 * GIB, "0.00")))
    assert lvm.capacity(tiny, POOL) == (10, 0)  # over-promised: nothing left, never < 0


def test_a_missing_or_wrong_pool_says_how_to_make_one() -> None:
    with pytest.raises(LookupError, match="lvcreate --type thin-pool"):
        lvm.capacity(lvm.parse_lvs(_report()), POOL)
    with pytest.raises(LookupError, match="not a thin pool"):
        lvm.find_pool(lvm.parse_lvs(_report(_lv("thin", GIB, pool="", attr="-wi-a-----"))),
                      POOL)


def test_every_lvm_command_leaves_pv_headers_inside_lvs_unscanned() -> None:
    """A guest can write a PV header into its volume: with devices/scan_lvs on, the host's
    LVM would see (and could act on) the guest's VG. Every LVM command turns it off."""
    for argv in (lvm.create_argv(POOL, "volume-v1", 1), lvm.lvs_argv(POOL),
                 lvm.snapshot_argv(POOL, "volume-v1", "volume-v2"),
                 lvm.extend_argv(POOL, "volume-v1", 2), lvm.remove_argv(POOL, "volume-v1"),
                 lvm.activate_argv(POOL, "volume-v1")):
        assert argv[0] in lvm.TOOLS and argv[1:3] == NO_SCAN, argv


@pytest.mark.parametrize("attr", ["twi-aot---", "twi-aotZ--", "twi-aot", "twi-a-tn--"])
def test_a_pool_that_does_not_zero_new_blocks_is_refused(attr: str) -> None:
    """A pool made with -Zn hands a deleted volume's chunks to the next volume as they
    were: one tenant would read another's data. Refused at join and in the inventory."""
    lvs = lvm.parse_lvs(_report(_lv("thin", 10 * GIB, "0.00", pool="", attr=attr)))
    with pytest.raises(LookupError, match="does not zero new blocks.*lvchange --zero y vg0/thin"):
        lvm.find_pool(lvs, POOL)
    with pytest.raises(LookupError, match="does not zero"):
        lvm.capacity(lvs, POOL)


def test_owned_is_a_tagged_thin_lv_of_the_pool() -> None:
    lvs = lvm.parse_lvs(LVS)
    assert lvm.owned(lvs, POOL, "volume-v1") is not None
    assert lvm.owned(lvs, POOL, "_snapshot-s1") is not None
    assert lvm.owned(lvs, POOL, "volume-theirs") is None  # not tagged
    assert lvm.owned(lvs, POOL, "volume-other") is None  # another pool
    assert lvm.owned(lvs, POOL, "root") is None
    assert lvm.owned(lvs, ThinPool("vg1", "thin"), "volume-v1") is None


def test_the_backend_a_node_uses() -> None:
    assert lvm.backend_of("/srv/volumes", None) == "file"
    assert lvm.backend_of("/var/lib/atwill-node/storage", "vg0/thin") == "lvm"
    assert lvm.backend_of(None, None) is None
    with pytest.raises(LvmNameError):
        lvm.backend_of("/x", "-vg")


def test_an_export_opens_an_lv_raw_and_a_file_as_qcow2() -> None:
    assert lvm.image_blockdevs("/dev/vg0/volume-v1") == [
        "driver=host_device,node-name=file0,filename=/dev/vg0/volume-v1,cache.direct=on",
        "driver=raw,node-name=vol0,file=file0"]
    assert lvm.image_blockdevs("/srv/v,1.qcow2") == [
        "driver=file,node-name=file0,filename=/srv/v,,1.qcow2",
        "driver=qcow2,node-name=vol0,file=file0"]
