"""The dashboard's pure helpers: usage bars, list rows, the launch body, API messages."""

from __future__ import annotations

import base64

import httpx

from atwill.controller.dashboard.client import error_message
from atwill.controller.dashboard.instances import launch_body, row
from atwill.controller.dashboard.overview import bar
from atwill.controller.dashboard.sessions import key_of, new_secret
from atwill.controller.dashboard.web import Form


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
