"""Mount points under a directory, from /proc/self/mountinfo text."""

from __future__ import annotations

from atwill.core.mountinfo import mounts_under, unescape

# The mounts mmdebstrap (root mode) leaves in a tree when it is killed, between others.
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
24 23 0:20 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
90 22 0:21 / /var/cache/atwill/images/.build-ab12/root/proc rw - proc proc rw
91 22 0:22 / /var/cache/atwill/images/.build-ab12/root/sys rw - sysfs sysfs rw
92 22 0:5 / /var/cache/atwill/images/.build-ab12/root/dev rw - devtmpfs udev rw
93 92 0:23 / /var/cache/atwill/images/.build-ab12/root/dev/pts rw - devpts devpts rw
94 92 0:20 / /var/cache/atwill/images/.build-ab12/root/dev/shm rw - tmpfs tmpfs rw
95 22 0:24 / /var/cache/atwill/images/.build-ab120/root/proc rw - proc proc rw
96 22 0:25 / /srv/with\\040space/x rw - tmpfs tmpfs rw
"""


def test_the_mounts_under_a_build_directory_deepest_first() -> None:
    found = mounts_under(MOUNTINFO, "/var/cache/atwill/images/.build-ab12")
    base = "/var/cache/atwill/images/.build-ab12/root"
    assert set(found) == {f"{base}/proc", f"{base}/sys", f"{base}/dev", f"{base}/dev/pts",
                          f"{base}/dev/shm"}
    # /dev/pts and /dev/shm come off before /dev, whatever their order in the table.
    assert found.index(f"{base}/dev") > max(found.index(f"{base}/dev/pts"),
                                            found.index(f"{base}/dev/shm"))


def test_a_sibling_with_the_same_prefix_is_not_under_it() -> None:
    assert mounts_under(MOUNTINFO, "/var/cache/atwill/images/.build-ab120/") == [
        "/var/cache/atwill/images/.build-ab120/root/proc"]
    assert mounts_under(MOUNTINFO, "/var/cache/atwill/images/.build-zz") == []


def test_the_directory_itself_and_stacked_mounts_latest_first() -> None:
    table = ("1 0 0:1 / /scratch rw - tmpfs a rw\n"
             "2 1 0:2 / /scratch rw - tmpfs b rw\n"
             "short line\n")
    assert mounts_under(table, "/scratch") == ["/scratch", "/scratch"]


def test_escaped_paths() -> None:
    assert unescape("/srv/with\\040space/x") == "/srv/with space/x"
    assert unescape("/a\\134b\\011c\\012") == "/a\\b\tc\n"
    assert unescape("/not\\09escape\\") == "/not\\09escape\\"
    assert mounts_under(MOUNTINFO, "/srv/with space") == ["/srv/with space/x"]
