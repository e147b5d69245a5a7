"""Accessible markup on every dashboard page: each form control has a label a screen
reader announces, each button a name, images and tables their text, one h1 per page,
and the document's language and viewport set for phones."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.api.dashboard_web import D, WebUser
from tests.api.test_dashboard_pages import OPERATOR_PAGES, PAGES
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes


class Markup(HTMLParser):
    """Collects what the checks need in one pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []  # with 'in_label'
        self.buttons: list[list[str]] = []  # text and aria-label of each
        self.h1 = 0
        self.html_lang = ""
        self.viewport = ""
        self.open_labels = 0
        self.open_buttons: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "html":
            self.html_lang = a.get("lang") or ""
        elif tag == "meta" and a.get("name") == "viewport":
            self.viewport = a.get("content") or ""
        elif tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        elif tag in ("input", "select", "textarea") and a.get("type") not in (
                "hidden", "submit", "button"):
            self.controls.append({**a, "tag": tag,
                                  "in_label": "1" if self.open_labels else None})
        elif tag == "button":
            self.open_buttons.append([a.get("aria-label") or ""])

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.open_labels:
            self.open_labels -= 1
        elif tag == "button" and self.open_buttons:
            self.buttons.append(self.open_buttons.pop())

    def handle_data(self, data: str) -> None:
        for button in self.open_buttons:
            button.append(data.strip())


def problems(html: str) -> list[str]:
    page = Markup()
    page.feed(html)
    found = []
    for control in page.controls:
        named = (control.get("in_label") or control.get("aria-label")
                 or control.get("aria-labelledby")
                 or (control.get("id") and control["id"] in page.label_for))
        if not named:
            found.append(f"{control['tag']} {control.get('name')!r} has no label")
    for button in page.buttons:
        if not "".join(button):
            found.append("a button has no text and no aria-label")
    missing = page.label_for - page.ids
    found += [f"label for {m!r} names no element" for m in sorted(missing)]
    if page.h1 != 1:
        found.append(f"{page.h1} h1 headings, not one")
    if page.html_lang != "en":
        found.append("no lang on <html>")
    if "width=device-width" not in page.viewport:
        found.append("no phone viewport")
    return found


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> Iterator[str]:
    project, user = unique("dmproj"), unique("dmuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield user
    finally:
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def test_the_checks_find_what_they_look_for() -> None:
    bad = ('<html><head></head><body><h1>A</h1><h1>B</h1><input name="x">'
           '<label for="gone">G</label><button></button></body></html>')
    assert problems(bad) == ["input 'x' has no label", "a button has no text and no "
                             "aria-label", "label for 'gone' names no element",
                             "2 h1 headings, not one", "no lang on <html>",
                             "no phone viewport"]


def instance(cloud: Cloud, user: str, tmp: Path, made: dict[str, str]) -> str:
    """A server with no node to run it (it ends in ERROR): its page is what is checked."""
    data = tmp / "img"
    data.write_bytes(qcow2_bytes(4096))
    made["image"] = cloud.openstack("image", "create", "--file", str(data), "--disk-format",
                                    "qcow2", unique("dmimg"), "-f", "json", user=user)["id"]
    made["flavor"] = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1",
                                     unique("dmflv"), "-f", "json")["id"]
    made["server"] = cloud.openstack("server", "create", "--flavor", made["flavor"], "--image",
                                     made["image"], "--no-network", unique("dmsrv"), "-f",
                                     "json", user=user)["id"]
    return made["server"]


def test_every_page_labels_its_controls_and_names_its_buttons(cloud: Cloud, member: str,
                                                              tmp_path: Path) -> None:
    web, admin = WebUser(cloud), WebUser(cloud)
    made: dict[str, str] = {}
    try:
        login = web.client.get(f"{D}/login")
        assert problems(login.text) == []
        web.login_as(member)
        admin.login_as("admin")
        made["volume"] = cloud.openstack("volume", "create", "--size", "1", unique("dmvol"),
                                         "-f", "json", user=member)["id"]
        server = instance(cloud, member, tmp_path, made)
        pages = [(web, p) for p in (*PAGES, f"/volumes/{made['volume']}",
                                    f"/instances/{server}", f"/instances/{server}/console")]
        pages += [(admin, p) for p in OPERATOR_PAGES]
        for who, path in pages:
            resp = who.client.get(D + path)
            assert resp.status_code == 200, (path, resp.status_code)
            assert problems(resp.text) == [], path
        refused = web.client.get(f"{D}/admin/nodes")
        assert refused.status_code == 403 and problems(refused.text) == []
    finally:
        web.close()
        admin.close()
        if "server" in made:
            cloud.openstack("server", "delete", "--wait", made["server"])
        for kind in ("volume", "image"):
            if kind in made:
                cloud.openstack(kind, "delete", made[kind], user=member)
        if "flavor" in made:
            cloud.openstack("flavor", "delete", made["flavor"])
