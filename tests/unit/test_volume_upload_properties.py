"""What a volume's image metadata may carry into the image it uploads (review finding: a
member could publish an image with fake direct_url/locations, reserved or os_glance*
properties, or more than Glance's 128)."""

from __future__ import annotations

import pytest

from atwill.controller.volume.volume_upload import image_properties
from atwill.core.errors import BadRequest


def test_only_what_a_client_may_write_to_glance_is_copied() -> None:
    meta = {"hw_disk_bus": "virtio", "os_distro": "debian", "direct_url": "file:///etc",
            "locations": "x", "location": "y", "deleted": "False", "os_glance_import": "z",
            "owner": "someone-else", "visibility": "public", "size": "1", "checksum": "c",
            "long": "v" * 300}
    assert image_properties(meta) == {"hw_disk_bus": "virtio", "os_distro": "debian"}


def test_more_than_glances_quota_is_refused() -> None:
    assert len(image_properties({f"k{i}": "v" for i in range(128)})) == 128
    with pytest.raises(BadRequest, match="at most 128"):
        image_properties({f"k{i}": "v" for i in range(129)})
