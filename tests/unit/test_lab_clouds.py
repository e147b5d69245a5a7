"""`atwill lab up --clouds 2`: the two labs' names and directories, and what it refuses
before it builds anything (no root needed for these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.lab.clouds import Clouds, LabError, lab_names


def test_two_labs_named_after_the_base() -> None:
    assert lab_names("lab") == ("lab1", "lab2")
    assert lab_names("Peers!") == ("pee1", "pee2")  # at most 4 characters per lab name


def test_each_cloud_is_a_lab_of_its_own(tmp_path: Path) -> None:
    clouds = Clouds("ab", tmp_path)
    assert (clouds.one.name, clouds.two.name) == ("ab1", "ab2")
    assert (clouds.one.directory, clouds.two.directory) == (tmp_path / "ab1", tmp_path / "ab2")


@pytest.mark.parametrize("option", [{"wan_delay": "50ms"}, {"wan_loss": "1%"}])
def test_a_delayed_wan_is_refused_before_anything_is_built(tmp_path: Path,
                                                           option: dict[str, str]) -> None:
    with pytest.raises(LabError, match="takes no --wan-delay"):
        Clouds("ab", tmp_path).up(**option)
    assert list(tmp_path.iterdir()) == []
