"""Whether a flavor can boot an image: Nova's checks of image size, min_disk and min_ram."""

from __future__ import annotations

from .errors import BadRequest

GIB = 1024**3


def check_fits(flavor_ram_mb: int, flavor_disk_gb: int, image_size: int | None,
               image_min_ram_mb: int | None, image_min_disk_gb: int | None,
               virtual_size: int | None = None) -> None:
    """A 400 with Nova's exact message when the flavor is too small for the image.

    A flavor disk of 0 skips the disk checks, as Nova does: the root disk then
    takes the image's own size (Nova's "root_gb 0 means don't check").
    """
    if flavor_ram_mb < (image_min_ram_mb or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    dest = flavor_disk_gb * GIB
    if dest == 0:
        return
    for size in (image_size, virtual_size):  # Nova checks both when the image says
        if (size or 0) > dest:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk "
                             f"is {dest} bytes, image is {size} bytes.")
    min_disk = (image_min_disk_gb or 0) * GIB
    if min_disk > dest:
        raise BadRequest(f"Flavor's disk is smaller than the minimum size specified in image "
                         f"metadata. Flavor disk is {dest} bytes, minimum size is {min_disk} "
                         "bytes.")
