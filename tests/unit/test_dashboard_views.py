"""The dashboard's pure helpers: usage bars, list rows, the launch body, API messages."""

from __future__ import annotations

import base64

import httpx
import pytest

from atwill.controller.dashboard.accounts import user_body
from atwill.controller.dashboard.client import ApiError, error_message
from atwill.controller.dashboard.cluster_map import view
from atwill.controller.dashboard.flavors import flavor_body
from atwill.controller.dashboard.instances import launch_body, row
from atwill.controller.dashboard.node_page import disable_body
from atwill.controller.dashboard.operator import node_row, node_states
from atwill.controller.dashboard.overview import bar
from atwill.controller.dashboard.quotas import limits_from, quota_rows
from atwill.controller.dashboard.roles import assignment_row, grant_target
from atwill.controller.dashboard.sessions import key_of, new_secret
from atwill.controller.dashboard.volumes import attached_to
from atwill.controller.dashboard.web import TEMPLATES, Form, whole_number


def test_usage_bars_cap_at_full_and_show_unlimited() -> None:
    assert bar("VCPUs", 3, 4)["percent"] == 75
    assert bar("VCPUs", 9, 4)["percent"] == 100
    unlimited = bar("RAM", 512, -1)
    assert unlimited["unlimited"] and unlimited["percent"] == 0


def test_a_row_shows_every_address_and_the_flavor_name() -> None:
    server = {"id": "s1", "name": "web", "status": "ACTIVE",
              "OS-EXT-STS:task_state": None, "flavor": {"original_name": "m1.tiny"},
              "addresses": {"private": [{"addr": "10.0.0.5"}], "other": [{"addr": "fd00::5"}]}}
    assert row(server) == {"id": "s1", "cells": {
        "name": "web", "status": "ACTIVE", "task": "", "addresses": "10.0.0.5, fd00::5",
        "flavor": "m1.tiny"}}


def test_launch_body_from_the_dialog() -> None:
    form = Form({"name": ["vm"], "image": ["img"], "flavor": ["flv"], "network": [],
                 "security_group": ["default", "web"], "keypair": [""], "zone": ["az1"],
                 "user_data": ["#!/bin/sh\r\necho hi\r\n"]})
    server = launch_body(form)["server"]
    assert server["networks"] == "none" and "key_name" not in server
    assert server["security_groups"] == [{"name": "default"}, {"name": "web"}]
    assert server["availability_zone"] == "az1"
    assert base64.b64decode(server["user_data"]) == b"#!/bin/sh\necho hi\n"
    with_net = launch_body(Form({"name": ["vm"], "network": ["n1", "n2"]}))["server"]
    assert with_net["networks"] == [{"uuid": "n1"}, {"uuid": "n2"}]


def test_error_messages_of_each_service_envelope() -> None:
    for body in ({"error": {"message": "No such user", "code": 404}},
                 {"itemNotFound": {"message": "No such user", "code": 404}},
                 {"NeutronError": {"message": "No such user", "type": "NotFound"}},
                 {"message": "No such user"}, {"detail": "No such user"}):
        assert error_message(httpx.Response(404, json=body)) == "No such user"
    assert error_message(httpx.Response(502, text="")) == "Bad Gateway"


def test_the_cookie_value_is_not_its_key() -> None:
    cookie = new_secret()
    assert len(cookie) == 43 and key_of(cookie) != cookie and len(key_of(cookie)) == 64
    assert new_secret() != cookie


def test_whole_numbers_from_a_form_say_which_field_is_wrong() -> None:
    form = Form({"size": [" 12 "], "bad": ["1.5"], "neg": ["-1"], "zero": ["0"]})
    assert whole_number(form, "size", "Size (GB)", 1) == 12
    for name in ("bad", "neg", "zero", "missing"):
        with pytest.raises(ApiError) as refused:
            whole_number(form, name, "Size (GB)", 1)
        assert refused.value.status == 400
        assert refused.value.message.startswith("Size (GB) must be a whole number of at least 1")


def test_flavor_and_user_bodies_from_their_forms() -> None:
    flavor = flavor_body(Form({"name": ["tiny"], "vcpus": ["1"], "ram": ["64"],
                               "disk": ["0"], "private": ["on"]}))["flavor"]
    assert flavor == {"name": "tiny", "vcpus": 1, "ram": 64, "disk": 0, "id": None,
                      "os-flavor-access:is_public": False}
    with pytest.raises(ApiError, match="needs a name"):
        flavor_body(Form({"vcpus": ["1"], "ram": ["64"], "disk": ["0"]}))
    user = user_body(Form({"name": ["ann"], "password": [" secret "], "project": ["p1"]}))
    assert user["user"]["password"] == " secret " and user["user"]["default_project_id"] == "p1"
    with pytest.raises(ApiError, match="needs a password"):
        user_body(Form({"name": ["ann"]}))


def test_node_states_and_volume_attachments_as_shown() -> None:
    nodes = [{"state": "up", "enabled": True}, {"state": "up", "enabled": False},
             {"state": "down", "enabled": True}, {"state": "up", "enabled": True}]
    assert node_states(nodes) == {"disabled": 1, "down": 1, "up": 2}
    assert attached_to({"attachments": [{"server_id": "a"}, {"server_id": "b"}]}) == "a, b"
    assert attached_to({"attachments": []}) == ""


def test_the_shared_list_macros_carry_the_csrf_token_and_escape_names() -> None:
    page = TEMPLATES.from_string(
        '{% import "macros.html" as ui with context %}'
        '{% call ui.table(["Name"]) %}<tr><td>x</td>'
        '<td>{{ ui.delete("/volumes/v1/delete", "volume", name) }}</td></tr>{% endcall %}')
    html = page.render(base="/dashboard", csrf="tok", name="<b>")
    assert 'action="/dashboard/volumes/v1/delete"' in html
    assert 'name="csrf" value="tok"' in html and "<b>" not in html
    assert '<th scope="col"><span class="sr">Actions</span></th>' in html


def test_quota_rows_and_limits_from_the_operator_form() -> None:
    detail = {"id": "p", "cores": {"limit": 20, "in_use": 3, "reserved": 0},
              "instances": {"limit": -1, "in_use": 2, "reserved": 0},
              "gigabytes___DEFAULT__": {"limit": -1, "in_use": 0}}
    rows = quota_rows(detail, "in_use")
    assert [(r["label"], r["used"], r["limit"]) for r in rows] == [
        ("Instances", 2, -1), ("VCPUs", 3, 20), ("Volume storage (GB), type __DEFAULT__", 0, -1)]
    form = Form({"cores": ["8"], "instances": ["-1"], "other": ["5"]})
    assert limits_from(form, ["cores", "instances", "ram"]) == {"cores": 8, "instances": -1}
    for bad in ("lots", "-2", "1.5", "99999999999", ""):
        with pytest.raises(ApiError) as refused:
            limits_from(Form({"ram": ["64"], "cores": [bad]}), ["ram", "cores"])
        assert refused.value.status == 400
        assert refused.value.message.startswith("VCPUs: the limit must be a whole number")
    with pytest.raises(ApiError, match="named no limit"):
        limits_from(Form({"other": ["1"]}), ["cores"])


def test_role_grants_need_all_three_and_domain_grants_are_not_rows() -> None:
    with pytest.raises(ApiError) as refused:
        grant_target(Form({"user": ["u1"], "role": [""]}))
    assert refused.value.status == 400
    assert refused.value.message.startswith("Choose a project, a role:")
    assert grant_target(Form({"user": ["u1"], "project": ["p1"], "role": ["r1"]})) == \
        "/identity/v3/projects/p1/users/u1/roles/r1"
    entry = {"role": {"id": "r1", "name": "member"}, "user": {"id": "u1", "name": "ann"},
             "scope": {"project": {"id": "p1", "name": "web"}}}
    assert assignment_row(entry) == {"user_id": "u1", "user": "ann", "project_id": "p1",
                                     "project": "web", "role_id": "r1", "role": "member"}
    assert assignment_row({**entry, "scope": {"domain": {"id": "default"}}}) is None
    assert assignment_row({**entry, "scope": {"system": {"all": True}}}) is None


def test_the_cluster_map_view_counts_instances_per_node() -> None:
    nodes = [{"id": "a", "name": "na", "state": "up", "enabled": True, "overlay_ip": "10.9.0.2",
              "health": "up", "fence_state": None}]
    servers = [{"id": str(i), "name": f"vm{i:02}", "host": "na"} for i in range(10)]
    servers.append({"id": "x", "name": "lost", "host": None})
    drawn = view(nodes, servers, "wireguard")
    assert drawn["nodes"][0]["instances"][:2] == ["vm00", "vm01"]
    assert len(drawn["nodes"][0]["instances"]) == 10 and drawn["unplaced"] == 1
    assert [line["up"] for line in drawn["links"]] == [True]
    html = TEMPLATES.get_template("admin/map_view.html").render(base="", map=drawn,
                                                                 log=["<b>x</b>"])
    assert "and 2 more" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'class="link up"' in html and 'data-node="a"' in html


def test_a_node_s_disable_reason_is_checked_before_the_api_is_asked() -> None:
    assert disable_body("") == {"reason": None}
    assert disable_body("new disks") == {"reason": "new disks"}
    with pytest.raises(ApiError) as refused:
        disable_body("x" * 256)
    assert refused.value.status == 400 and "at most 255" in refused.value.message


def test_a_node_row_shows_what_its_hypervisor_has_claimed() -> None:
    node = {"id": "n1", "name": "n1", "state": "up", "enabled": False, "overlay_ip": None,
            "vcpus": 8, "memory_mb": 4096, "disk_gb": 100, "running_vms": 2,
            "last_heartbeat": None}
    used = {"vcpus_used": 3, "memory_mb_used": 512, "local_gb_used": 20}
    cells = node_row(node, used)["cells"]
    assert cells["resources"] == "3 of 8 VCPU, 512 of 4096 MiB, 20 of 100 GB"
    assert cells["state"] == "up (disabled)" and cells["vms"] == "2"
    assert node_row(node)["cells"]["resources"] == "8 VCPU, 4096 MiB, 100 GB"
