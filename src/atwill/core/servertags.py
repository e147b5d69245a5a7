"""Nova's server tags (2.26): what a tag may be, and the list filters over tags."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import BadRequest

MAX_TAGS = 50
MAX_TAG_LENGTH = 60
FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")


def tag_problem(tag: object) -> str | None:
    """Why a value is not a tag (None when it is one), in the words of Nova's schema."""
    if not isinstance(tag, str):
        return f"{tag!r} is not of type 'string'"
    if not tag:
        return "'' is too short"
    if len(tag) > MAX_TAG_LENGTH:
        return f"{tag!r} is too long"
    if "/" in tag or "," in tag:
        return f"{tag!r} does not match '^[^,/]*$'"
    if any(not ch.isprintable() for ch in tag):
        return f"{tag!r} contains unprintable characters"
    return None


def check_tag(tag: str) -> str:
    """A tag named in the URL: Nova's 400 message when it is not acceptable."""
    problem = tag_problem(tag)
    if problem:
        raise BadRequest(f"Tag '{tag}' is invalid. It must be a non empty string without "
                         f"characters '/' and ','. Validation error message: {problem}")
    return tag


def check_tags(value: object) -> list[str]:
    """A whole list of tags (PUT /tags): at most 50, each a tag; duplicates count once."""
    if not isinstance(value, list):
        raise BadRequest("Invalid input for field/attribute tags. Value: "
                         f"{value!r}. {value!r} is not of type 'array'")
    for tag in value:
        problem = tag_problem(tag)
        if problem:
            raise BadRequest(f"Invalid input for field/attribute tags. Value: {tag!r}. "
                             f"{problem}")
    unique = list(dict.fromkeys(value))
    if len(unique) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field/attribute tags. Value: {value!r}. "
                         f"{value!r} is too long")
    return unique


def parse_filters(params: dict[str, str]) -> dict[str, set[str]]:
    """The tag filters of a server list query: each a comma-separated list of tags."""
    return {name: {t for t in params[name].split(",") if t} for name in FILTERS
            if params.get(name)}


def matches(tags: Iterable[str], filters: dict[str, set[str]]) -> bool:
    """Nova's semantics: tags = all of, tags-any = one of, not-tags = not all of,
    not-tags-any = none of."""
    have = set(tags)
    if "tags" in filters and not filters["tags"] <= have:
        return False
    if "tags-any" in filters and not filters["tags-any"] & have:
        return False
    if "not-tags" in filters and filters["not-tags"] <= have:
        return False
    return not ("not-tags-any" in filters and filters["not-tags-any"] & have)
