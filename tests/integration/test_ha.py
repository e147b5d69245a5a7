"""A node's power is cut: its server runs again on another node with its fixed IP, and when
the node boots again it destroys only its stale copy. Detection and total times are printed.
A server booted from a volume (kept by a third node, a storage node) keeps what its
guest wrote on that volume when its node's power is cut: it boots on the same volume on
the other node, and the storage node no longer serves the fenced node. An image-booted
server's data volume (hot-plugged) follows it: rebuilt from its image on the other node, the
same volume is attached there and the fresh guest reads back what it wrote before the cut.
A server booted from a volume live-migrates on the same export: its guest reads and writes
on through the destination, no copy is made, and the source's key is refused after."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from atwill.lab import Lab
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import READY, console, upload_guest, wait_console, wait_status

LAB = {"nodes": 2}


def _node(lab: Lab, name: str) -> dict:
    return json.loads(lab.atwill_ctl("node", "show", name).stdout)


@pytest.fixture(scope="module")
def base(lab: Lab) -> None:
    """The guest image, flavor m1.ha and network hanet (they go with the module's lab)."""
    upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.ha")
    lab.openstack("network", "create", "hanet")
    lab.openstack("subnet", "create", "--network", "hanet", "--subnet-range", "10.30.0.0/24",
                  "hasub")


def test_killed_node_is_evacuated_and_cleans_up_on_return(lab: Lab, base: None) -> None:
    moved = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                          "--network", "hanet", "--availability-zone", "nova:node1", "moved",
                          "-f", "json")
    # Not moved: it stays on node2 and its disk must survive everything below.
    stays = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                          "--network", "hanet", "--availability-zone", "nova:node2", "stays",
                          "-f", "json")
    before = wait_status(lab, "moved", "ACTIVE", 180)
    wait_status(lab, "stays", "ACTIVE", 180)
    assert before["OS-EXT-SRV-ATTR:host"] == "node1"
    stale = Path(lab.host("node1").state_dir) / "instances" / moved["id"]
    kept = Path(lab.host("node2").state_dir) / "instances" / stays["id"]
    assert stale.is_dir() and kept.is_dir()

    cut = time.monotonic()
    lab.kill_node("node1")
    lab.wait_for(lambda: _node(lab, "node1")["health"] == "down", 30, "node1 detected down")
    detection = time.monotonic() - cut
    lab.openstack("compute", "service", "set", "--down", "node1", "nova-compute")
    lab.wait_for(lambda: (s := lab.openstack("server", "show", "moved", "-f", "json"))
                 ["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:host"] == "node2", 180,
                 "moved ACTIVE on node2")
    total = time.monotonic() - cut
    after = lab.openstack("server", "show", "moved", "-f", "json")
    assert after["addresses"] == before["addresses"]
    print(f"\nHA: detection {detection:.1f} s, power cut to ACTIVE elsewhere {total:.1f} s")
    assert detection < 6.0

    lab.start_node("node1")
    lab.wait_for(lambda: not stale.exists(), 120, "node1 to destroy its stale copy")
    assert kept.is_dir()
    assert _node(lab, "node1")["health"] == "up"
    qemus = [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    assert not qemus, qemus
    lab.openstack("compute", "service", "set", "--up", "node1", "nova-compute")
    lab.openstack("server", "delete", "--wait", moved["id"], stays["id"])


# The guest boots from the volume (its FAT boot disk fills the first 16 MiB): at 512 MiB,
# past it, the first boot writes a marker, and a later boot reads it back.
MARK_SECTOR = 1048576
VOLUME_SCRIPT = f"""#!/bin/sh
got=$(dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 2>/dev/null | tr -cd A-Za-z0-9-)
case "$got" in
  HAVOL-*) echo "VOLUME-HAS $got" ;;
  *) m=HAVOL-$(cut -c1-8 /proc/sys/kernel/random/uuid)
     printf %s "$m" | dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=sync,notrunc,fsync \\
       2>/dev/null && echo "VOLUME-WROTE $m" ;;
esac
"""


def _storage_node(lab: Lab, name: str) -> Path:
    """A node that keeps volumes, joined as cloud-init would join it; its storage path."""
    lab.add_node(name, join=False)
    path = Path(lab.host(name).state_dir) / "volumes"
    lab.boot_agent(name, {**lab.join_settings(name), "ATWILL_JOIN_STORAGE": str(path)})
    lab.wait_node_state(name, "up", 60)
    return path


def _exports(path: Path) -> dict[str, tuple[dict, str]]:
    """The storage node's exports by the node they serve: (record, the key line it admits)."""
    found = {}
    for record in path.glob(".exports/*/export.json"):
        export = json.loads(record.read_text())
        found[export["node_id"]] = (export, (record.parent / "tls" / "keys.psk").read_text())
    return found


def _nbd_read(lab: Lab, host: str, export: dict, psk_line: str) -> bool:
    """Whether the export lets host read its first sector with the key of psk_line."""
    identity = psk_line.split(":", 1)[0]
    keys = Path(lab.directory) / f"nbd-client-{host}"
    keys.mkdir(mode=0o700, exist_ok=True)
    (keys / "keys.psk").write_text(psk_line)
    done = lab.exec(host, "qemu-io", "-r", "--object",
                    f"tls-creds-psk,id=t0,endpoint=client,dir={keys},username={identity}",
                    "--image-opts", f"driver=nbd,server.type=inet,server.host={export['host']},"
                    f"server.port={export['port']},export={export['volume_id']},tls-creds=t0",
                    "-c", "read 0 512", check=False, timeout=30)
    return done.returncode == 0 and "read 512/512" in done.stdout


def test_volume_backed_server_keeps_its_data_across_evacuation(lab: Lab, base: None) -> None:
    store = _storage_node(lab, "node3")
    script = Path(lab.directory) / "havol-user-data.sh"
    script.write_text(VOLUME_SCRIPT)
    made = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                         "--boot-from-volume", "1", "--network", "hanet",
                         "--availability-zone", "nova:node1", "--user-data", str(script),
                         "withvol", "-f", "json")
    wait_status(lab, "withvol", "ACTIVE", 180)
    # From now on it runs no servers (its exports go on): the evacuation goes to node2.
    lab.openstack("compute", "service", "set", "--disable", "node3", "nova-compute")
    wrote = wait_console(lab, "withvol", "VOLUME-WROTE ", 120)
    marker = wrote.split("VOLUME-WROTE ", 1)[1].split()[0]
    volume = lab.openstack("server", "show", "withvol", "-f", "json")["volumes_attached"]
    ids = {n: _node(lab, n)["id"] for n in ("node1", "node2")}
    ((node, (_, old_key)),) = _exports(store).items()
    assert node == ids["node1"]

    cut = time.monotonic()
    lab.kill_node("node1")
    lab.wait_for(lambda: (s := lab.openstack("server", "show", "withvol", "-f", "json"))
                 ["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:host"] == "node2", 120,
                 "withvol ACTIVE on node2")
    total = time.monotonic() - cut
    # The same volume, no copy; the fenced node is served no more (storage fencing).
    assert lab.openstack("server", "show", "withvol", "-f", "json")["volumes_attached"] \
        == volume
    ((node, (export, new_key)),) = _exports(store).items()
    assert node == ids["node2"] and new_key != old_key
    # The key node1's QEMU held (a node not quite dead would still have it) is refused;
    # the new one is admitted (tried from node2, whose network surely reaches the export).
    assert not _nbd_read(lab, "node2", export, old_key)
    assert _nbd_read(lab, "node2", export, new_key)
    # Written on node1 before its power was cut, read back by the guest booted on node2.
    wait_console(lab, "withvol", f"VOLUME-HAS {marker}", 120)
    print(f"\nHA volume: power cut to ACTIVE on node2 {total:.1f} s")

    lab.start_node("node1")
    lab.wait_for(lambda: _node(lab, "node1")["health"] == "up", 60, "node1 back")
    lab.openstack("server", "delete", "--wait", made["id"])
    (vid,) = [v["id"] for v in volume]  # kept (no delete on termination): deleted here
    lab.wait_for(lambda: lab.openstack("volume", "show", vid, "-f", "json")["status"]
                 == "available", 60, "the volume let go")
    lab.openstack("volume", "delete", vid)


# An image-booted server's data volume, found by its serial (the volume id's first 20
# characters, as Nova gives virtio-blk): it may be hot-plugged after the guest's boot, so
# the script waits for it. The first boot writes a marker at 4 KiB, a later boot reads it.
DATA_SCRIPT = """#!/bin/sh
for i in $(seq 1 240); do
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "{serial}" ] && dev=/dev/${{d##*/}} && break 2
  done
  sleep 0.25
done
[ -n "$dev" ] || {{ echo "DATA-NO-DISK"; exit 1; }}
got=$(dd if=$dev bs=512 skip=8 count=1 iflag=direct 2>/dev/null | tr -cd A-Za-z0-9-)
case "$got" in
  HADATA-*) echo "DATA-HAS $got on $dev" ;;
  *) m=HADATA-$(cut -c1-8 /proc/sys/kernel/random/uuid)
     printf %s "$m" | dd of=$dev bs=512 seek=8 conv=sync,notrunc,fsync 2>/dev/null &&
       echo "DATA-WROTE $m on $dev" ;;
esac
"""


def _data_volume(lab: Lab) -> tuple[Path, str]:
    """The module's storage node3 (made by the first test that needs it) and a new blank
    1 GiB volume on it; node3 then runs no servers, so an evacuation goes to node2. (One
    flag disables a node's nova-compute and cinder-volume: it is enabled to take the
    volume.)"""
    if "node3" in lab.state.hosts:
        path = Path(lab.host("node3").state_dir) / "volumes"
        lab.openstack("compute", "service", "set", "--enable", "node3", "nova-compute")
    else:
        path = _storage_node(lab, "node3")
    vid = lab.openstack("volume", "create", "--size", "1", "hadata", "-f", "json")["id"]
    shown = lab.wait_for(lambda: (v := lab.openstack("volume", "show", vid, "-f", "json"))
                         ["status"] in ("available", "error") and v, 60, "hadata created")
    assert shown["status"] == "available", shown
    lab.openstack("compute", "service", "set", "--disable", "node3", "nova-compute")
    return path, vid


def test_data_volume_of_image_booted_server_follows_it_across_evacuation(
        lab: Lab, base: None) -> None:
    store, vid = _data_volume(lab)
    script = Path(lab.directory) / "hadata-user-data.sh"
    script.write_text(DATA_SCRIPT.format(serial=vid[:20]))
    made = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                         "--network", "hanet", "--availability-zone", "nova:node1",
                         "--user-data", str(script), "withdata", "-f", "json")
    wait_status(lab, "withdata", "ACTIVE", 180)
    # Hot-plugged into the running guest, whose user data waits for the disk.
    lab.openstack("server", "add", "volume", "withdata", vid)
    wrote = wait_console(lab, "withdata", "DATA-WROTE ", 90)
    marker = wrote.split("DATA-WROTE ", 1)[1].split()[0]
    shown = lab.openstack("volume", "show", vid, "-f", "json")
    assert shown["status"] == "in-use"
    assert [(a["server_id"], a["host_name"]) for a in shown["attachments"]] \
        == [(made["id"], "node1")]
    ids = {n: _node(lab, n)["id"] for n in ("node1", "node2")}
    assert _exports(store)[ids["node1"]][0]["volume_id"] == vid

    cut = time.monotonic()
    lab.kill_node("node1")
    lab.wait_for(lambda: (s := lab.openstack("server", "show", "withdata", "-f", "json"))
                 ["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:host"] == "node2", 120,
                 "withdata ACTIVE on node2")
    total = time.monotonic() - cut
    # Rebuilt from its image on node2; the same data volume, attached there, no copy.
    after = lab.openstack("server", "show", "withdata", "-f", "json")
    assert [v["id"] for v in after["volumes_attached"]] == [vid]
    assert after["image"] and "atwill-guest" in str(after["image"])
    shown = lab.openstack("volume", "show", vid, "-f", "json")
    assert shown["status"] == "in-use"
    assert [(a["server_id"], a["host_name"]) for a in shown["attachments"]] \
        == [(made["id"], "node2")]
    exported = _exports(store)
    assert set(exported) == {ids["node2"]} and exported[ids["node2"]][0]["volume_id"] == vid
    # Written on node1 before its power was cut, read back by the guest booted on node2.
    wait_console(lab, "withdata", f"DATA-HAS {marker}", 90)
    print(f"\nHA data volume: power cut to ACTIVE on node2 {total:.1f} s")

    lab.start_node("node1")
    lab.wait_for(lambda: _node(lab, "node1")["health"] == "up", 60, "node1 back")
    lab.openstack("server", "delete", "--wait", made["id"])
    lab.wait_for(lambda: lab.openstack("volume", "show", vid, "-f", "json")["status"]
                 == "available", 60, "the data volume let go")
    lab.openstack("volume", "delete", vid)


# A guest booted from a volume writes a marker on it at boot, then each second reads it
# back past the cache (O_DIRECT) and writes its count next to it: before, during and after
# a live migration, both through whichever node runs it.
LIVE_SCRIPT = f"""#!/bin/sh
m=LMVOL-$(cut -c1-8 /proc/sys/kernel/random/uuid)
printf %s "$m" | dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=sync,notrunc,fsync 2>/dev/null \\
  && echo "LMVOL-WROTE $m" > /dev/console
i=0
while true; do
  i=$((i+1))
  got=$(dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 iflag=direct 2>/dev/null \\
        | tr -cd A-Za-z0-9-)
  printf %s "$m-$i-end" | dd of=/dev/vda bs=512 seek={MARK_SECTOR + 1} \\
    conv=sync,notrunc,fsync 2>/dev/null
  echo "LMVOL-READ $got $i" > /dev/console
  sleep 1
done
"""


def _reads(text: str, marker: str) -> list[int]:
    return [int(n) for n in re.findall(rf"LMVOL-READ {marker} (\d+)", text)]


def test_volume_backed_server_live_migrates_on_the_same_export(lab: Lab, base: None) -> None:
    """Live migration of a server booted from a volume (servers/live_migration_volumes.py):
    the destination plugs in the same export (no copy of the volume is made), the guest
    reads its marker and writes on through it, and the source's key is refused after."""
    if "node3" in lab.state.hosts:
        store = Path(lab.host("node3").state_dir) / "volumes"
        lab.openstack("compute", "service", "set", "--enable", "node3", "nova-compute")
    else:
        store = _storage_node(lab, "node3")
    script = Path(lab.directory) / "lmvol-user-data.sh"
    script.write_text(LIVE_SCRIPT)
    made = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                         "--boot-from-volume", "1", "--network", "hanet",
                         "--availability-zone", "nova:node1", "--user-data", str(script),
                         "livevol", "-f", "json")
    wait_status(lab, "livevol", "ACTIVE", 180)
    # A data volume hot-plugged into the running guest moves along (its device's slot
    # is the same on both nodes, or the migration would fail).
    data_vid = lab.openstack("volume", "create", "--size", "1", "lmdata", "-f", "json")["id"]
    lab.wait_for(lambda: lab.openstack("volume", "show", data_vid, "-f", "json")["status"]
                 == "available", 60, "lmdata created")
    lab.openstack("compute", "service", "set", "--disable", "node3", "nova-compute")
    lab.openstack("server", "add", "volume", "livevol", data_vid)
    lab.wait_for(lambda: lab.openstack("volume", "show", data_vid, "-f", "json")["status"]
                 == "in-use", 60, "lmdata attached")
    wrote = wait_console(lab, "livevol", "LMVOL-WROTE ", 120)
    marker = wrote.split("LMVOL-WROTE ", 1)[1].split()[0]
    lab.wait_for(lambda: len(_reads(console(lab, "livevol"), marker)) >= 2, 60,
                 "the guest reading its marker")
    ids = {n: _node(lab, n)["id"] for n in ("node1", "node2")}
    exported = _volume_exports(store)
    (vid,) = [v["id"] for v in lab.openstack("server", "show", "livevol", "-f",
                                             "json")["volumes_attached"] if v["id"] != data_vid]
    node, export, old_key = exported[vid]
    assert {v: n for v, (n, _, _) in exported.items()} == {vid: ids["node1"],
                                                           data_vid: ids["node1"]}
    files = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))

    start = time.monotonic()
    lab.openstack("--os-compute-api-version", "2.30", "server", "migrate",
                  "--live-migration", "--host", "node2", "livevol")
    try:
        lab.wait_for(lambda: (s := lab.openstack("server", "show", "livevol", "-f", "json"))
                     ["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:host"] == "node2", 120,
                     "livevol ACTIVE on node2", interval=1)
    except TimeoutError:
        raise AssertionError(_live_trace(lab, "livevol")) from None
    took = time.monotonic() - start
    (record,) = lab.openstack("server", "migration", "list", "--server", "livevol",
                              "-f", "json")
    assert record["Status"] == "completed", record
    last = max(_reads(console(lab, "livevol"), marker))
    # The same boot reads its marker on through node2, and writes its count there.
    text = lab.wait_for(lambda: (t := console(lab, "livevol"))
                        and max(_reads(t, marker)) > last + 2 and t, 60,
                        "the guest reading its volume on node2")
    assert text.count(READY) == 1, text[-1500:]
    counted = max(_reads(text, marker))
    # No copy: the storage node holds the one volume it had; node2 has no disk of it.
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == files
    assert not (Path(lab.host("node2").state_dir) / "instances" / made["id"]
                / "disk.qcow2").exists()
    # One export, on the same port (the daemon handed over), now to node2 alone, with
    # node2's own key; node1's key is refused.
    moved = _volume_exports(store)
    assert {v: n for v, (n, _, _) in moved.items()} == {vid: ids["node2"],
                                                        data_vid: ids["node2"]}
    _, now, new_key = moved[vid]
    assert now["port"] == export["port"]
    assert new_key != old_key and f"-lm{record['Id']}:" in new_key
    assert not _nbd_read(lab, "node2", now, old_key)
    assert _nbd_read(lab, "node2", now, new_key)
    assert lab.openstack("volume", "show", data_vid, "-f", "json")["status"] == "in-use"
    # What the guest wrote through node2 is on the storage node's volume.
    def written() -> list[int] | None:
        data = (store / f"{vid}.qcow2").read_bytes()
        found = [int(n) for n in re.findall(rf"{marker}-(\d+)-end".encode(), data)]
        return found if found and max(found) > last else None

    try:  # the guest's next fsync'd write reaches the file within seconds
        lab.wait_for(written, 30, "the guest's count in the volume file", interval=2)
    except TimeoutError:
        raise AssertionError((written(), last, counted)) from None
    print(f"\nlive migration of a volume-backed server: {took:.1f} s to ACTIVE on node2")

    lab.openstack("server", "delete", "--wait", made["id"])
    for each in (vid, data_vid):
        lab.wait_for(lambda v=each: lab.openstack("volume", "show", v, "-f", "json")[
            "status"] == "available", 60, "the volumes let go")
        lab.openstack("volume", "delete", each)


def _volume_exports(path: Path) -> dict[str, tuple[str, dict, str]]:
    """The storage node's exports by volume: (node served, record, key lines admitted)."""
    found = {}
    for record in path.glob(".exports/*/export.json"):
        export = json.loads(record.read_text())
        found[export["volume_id"]] = (export["node_id"], export,
                                      (record.parent / "tls" / "keys.psk").read_text())
    return found


def _live_trace(lab: Lab, server: str) -> str:
    """What the API and the agents said of the migration, for a failure."""
    out = [str(lab.openstack("--os-compute-api-version", "2.80", "server", "migration",
                             "list", "--server", server, "-f", "json"))]
    for host in ("node1", "node2", "node3"):
        text = (Path(lab.host(host).state_dir) / "agent.log").read_text(errors="replace")
        out += [f"--- {host}"] + [line for line in text.splitlines()
                                  if "migrat" in line or "Error" in line
                                  or "export" in line][-30:]
    return "\n".join(out)
