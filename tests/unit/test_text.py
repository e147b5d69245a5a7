import pytest

from atwill.core.errors import BadRequest
from atwill.core.text import clean_name, has_control, shown


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "a\rb", "\x1b[31m", "a\x7f", "a\ud800"])
def test_control_characters_are_refused(bad: str) -> None:
    assert has_control(bad)
    with pytest.raises(BadRequest, match="control character"):
        clean_name(bad)


@pytest.mark.parametrize("good", ["web-1", "día ☁", "a b", ""])
def test_printable_names_pass(good: str) -> None:
    assert clean_name(good) == good


def test_non_strings_and_long_names_are_refused() -> None:
    with pytest.raises(BadRequest, match="not a string"):
        clean_name(["x"])
    with pytest.raises(BadRequest, match="longer than 255"):
        clean_name("x" * 256)
    with pytest.raises(BadRequest, match="required"):
        clean_name(None, required=True)


def test_shown_cuts_long_values() -> None:
    assert len(shown("x" * 65536)) < 100
    assert shown("abc") == "'abc'"
