"""Nova's flavor-versus-image checks at boot."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest
from atwill.core.imagefit import GIB, check_fits


def test_memory_below_min_ram_is_refused() -> None:
    with pytest.raises(BadRequest) as err:
        check_fits(64, 1, 1024, 128, 0)
    assert err.value.message == "Flavor's memory is too small for requested image."


def test_disk_below_min_disk_is_refused_with_nova_message() -> None:
    with pytest.raises(BadRequest) as err:
        check_fits(64, 1, 1024, 0, 2)
    assert err.value.message == (
        "Flavor's disk is smaller than the minimum size specified in image metadata. "
        f"Flavor disk is {GIB} bytes, minimum size is {2 * GIB} bytes.")


def test_image_larger_than_disk_is_refused() -> None:
    with pytest.raises(BadRequest) as err:
        check_fits(64, 1, GIB + 1, 0, 0)
    assert err.value.message.startswith("Flavor's disk is too small for requested image.")


def test_zero_disk_flavor_skips_disk_checks_but_not_memory() -> None:
    check_fits(64, 0, 10 * GIB, 64, 20)
    with pytest.raises(BadRequest):
        check_fits(64, 0, 0, 65, 0)


def test_exact_fit_and_unset_minimums_pass() -> None:
    check_fits(128, 2, 2 * GIB, 128, 2)
    check_fits(64, 1, None, None, None)
