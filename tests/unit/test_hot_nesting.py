"""Nested stacks deeper than Heat's max_nested_stack_depth (5), or a template that includes
itself, are refused before anything is made."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from atwill.core.hot.nesting import MAX_DEPTH, RequestLimitExceeded, check

MESSAGE = "Recursion depth exceeds 5."


def tmpl(**resources: Any) -> dict[str, Any]:
    return {"heat_template_version": "2021-04-16", "resources": resources}


def chain(levels: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A top template whose nested stacks go levels down through files l1.yaml …"""
    files = {f"l{n}.yaml": yaml.safe_dump(tmpl(r={"type": f"l{n + 1}.yaml"}))
             for n in range(1, levels)}
    files[f"l{levels}.yaml"] = yaml.safe_dump(tmpl(r={"type": "OS::Heat::None"}))
    return tmpl(top={"type": "l1.yaml"}), files


def test_a_template_that_includes_itself_directly_is_refused() -> None:
    self_ref = tmpl(again={"type": "me.yaml"})
    with pytest.raises(RequestLimitExceeded, match=MESSAGE) as caught:
        check(self_ref, {"me.yaml": yaml.safe_dump(self_ref)}, {})
    assert caught.value.status == 400


def test_a_cycle_through_another_template_and_the_registry_is_refused() -> None:
    files = {"a.yaml": yaml.safe_dump(tmpl(b={"type": "My::B"})),
             "b.yaml": yaml.safe_dump(tmpl(a={"type": "a.yaml"}))}
    with pytest.raises(RequestLimitExceeded, match=MESSAGE):
        check(tmpl(start={"type": "a.yaml"}), files, {"My::B": "b.yaml"})


def test_cycles_through_groups_and_nested_stack_resources_are_refused() -> None:
    group = tmpl(g={"type": "OS::Heat::ResourceGroup", "properties": {
        "count": 2, "resource_def": {"type": "g.yaml"}}})
    with pytest.raises(RequestLimitExceeded, match=MESSAGE):
        check(group, {"g.yaml": yaml.safe_dump(group)}, {})
    stack = tmpl(s={"type": "OS::Heat::Stack",
                    "properties": {"template": {"get_file": "s.yaml"}}})
    with pytest.raises(RequestLimitExceeded, match=MESSAGE):
        check(stack, {"s.yaml": yaml.safe_dump(stack)}, {})


def test_depth_up_to_the_limit_passes_and_one_more_is_refused() -> None:
    check(*chain(MAX_DEPTH), {})
    with pytest.raises(RequestLimitExceeded, match=MESSAGE):
        check(*chain(MAX_DEPTH + 1), {})


def test_many_resources_naming_one_file_are_walked_once() -> None:
    # 50 resources per level, 5 levels: 50**5 walks without the per-file memo.
    files = {f"w{n}.yaml": yaml.safe_dump(tmpl(**{f"r{i}": {"type": f"w{n + 1}.yaml"}
                                                   for i in range(50)}))
             for n in range(1, MAX_DEPTH)}
    files[f"w{MAX_DEPTH}.yaml"] = yaml.safe_dump(tmpl())
    check(tmpl(**{f"r{i}": {"type": "w1.yaml"} for i in range(50)}), files, {})


def test_templates_without_nesting_and_unreadable_files_pass_to_later_checks() -> None:
    check(tmpl(n={"type": "OS::Neutron::Net"}, v={"type": "OS::Heat::Value"}), {}, {})
    check(tmpl(x={"type": "bad.yaml"}), {"bad.yaml": "a: [unclosed"}, {})
    check({"resources": "not a map"}, {}, {})
