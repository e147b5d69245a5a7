"""The dashboard in a real browser: Debian's headless chromium driven through selenium.

One browser for the module; the controller is the shared test controller, its node an
agent-less FakeNode that the test speaks for. Screenshots of the main pages at 1280x800
and 390x844 go to a temporary directory (printed, not kept in the tree); at each size
the page must not be wider than the screen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="chromium and chromium-driver are not installed (scripts/install installs them)")
SIZES = {"wide": (1280, 800), "phone": (390, 844)}
# The outermost elements that reach past the screen's right edge, to name in a failure.
WIDEST = """
var w = arguments[0] + 1, out = [];
document.querySelectorAll("body *").forEach(function (e) {
  if (e.getBoundingClientRect().right > w &&
      e.parentElement.getBoundingClientRect().right <= w) {
    out.push(e.tagName + "#" + e.id + "." + e.className + " " +
             Math.round(e.getBoundingClientRect().right));
  }
});
return out.slice(0, 8);
"""
D = "/dashboard"


@dataclass
class Env:
    cloud: Cloud
    driver: Any
    node: FakeNode
    zone: str
    flavor: str
    image: str
    user: str
    shots: Path
    tmp: Path

    def go(self, path: str) -> None:
        self.driver.get(self.cloud.url + D + path)

    def login(self, user: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.delete_all_cookies()
        self.go("/login")
        info = self.cloud.users.get(user)
        fields = {"user": user, "password": info["password"] if info else
                  self.cloud.admin_password, "project": info["project"] if info else "admin"}
        for name, value in fields.items():
            box = self.driver.find_element(By.ID, name)
            box.clear()
            box.send_keys(value)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait(lambda: "Overview of" in self.driver.page_source)

    def wait(self, check: Any, timeout: float = 30) -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
                lambda _driver: check())
        except TimeoutException:
            body = self.driver.page_source[:3000]
            raise AssertionError(f"timed out on {self.driver.current_url}:\n{body}") from None

    def shoot(self, name: str) -> None:
        for size, (width, height) in SIZES.items():
            # The viewport itself, as a phone has it (a window size includes its frame).
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1,
                "mobile": size == "phone"})
            self.driver.save_screenshot(str(self.shots / f"{name}-{size}.png"))
            # Nothing wider than the screen: wide tables scroll inside their own box.
            overflow = self.driver.execute_script(
                "return document.documentElement.scrollWidth")
            assert overflow <= width, (f"{name} is {overflow} px wide at {size} ({width} px); "
                                       f"too wide: {self.driver.execute_script(WIDEST, width)}")
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def make_driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--ignore-certificate-errors", "--window-size=1280,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def env(cloud: Cloud, engine: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if engine != "sqlite":
        pytest.skip("the browser flows run once, on SQLite: the dashboard's own store is "
                    "tested on both engines in test_dashboard_session.py")
    tmp = tmp_path_factory.mktemp("dashboard")
    shots = Path(os.environ.get("ATWILL_DASHBOARD_SHOTS") or tmp_path_factory.mktemp("shots"))
    zone = unique("dashaz")
    node = FakeNode(cloud, tmp, zone)
    flavor = unique("dashflv")
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                             flavor, "-f", "json")["id"]
    data = tmp / "base.img"
    data.write_bytes(qcow2_bytes(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "qcow2",
                            "--public", unique("dashimg"), "-f", "json")["id"]
    project, user = unique("dashbproj"), unique("dashbuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    driver = make_driver()
    try:
        yield Env(cloud, driver, node, zone, flavor, image, user, shots, tmp)
    finally:
        driver.quit()
        print(f"dashboard screenshots: {shots}")
        node.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def by(kind: str, value: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return {"id": By.ID, "css": By.CSS_SELECTOR, "xpath": By.XPATH,
            "link text": By.LINK_TEXT}[kind], value


def fill(env: Env, fields: dict[str, str]) -> None:
    for element_id, value in fields.items():
        box = env.driver.find_element(*by("id", element_id))
        box.clear()
        box.send_keys(value)


def choose(env: Env, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(env.driver.find_element(*by("id", element_id))).select_by_value(value)


def choose_text(env: Env, element_id: str, text: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(env.driver.find_element(*by("id", element_id))).select_by_visible_text(text)


def text_of(env: Env, css: str) -> str:
    # In one script: a live part or the page may be replaced between a find and a read.
    return env.driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def heading(env: Env) -> str:
    return text_of(env, "h1")


def cell(env: Env, row_id: str, column: str) -> str:
    # Read in one script: a live table may drop the row between a find and a read.
    return env.driver.execute_script(
        "var c = document.querySelector(arguments[0]); return c ? c.innerText : '';",
        f'tr[data-id="{row_id}"] td[data-col="{column}"]')


def mark_page(env: Env) -> None:
    env.driver.execute_script("window.atwillSamePage = true")


def same_page(env: Env) -> bool:
    return env.driver.execute_script("return window.atwillSamePage === true")


def test_member_launches_an_instance_that_turns_active_without_reloading(env: Env) -> None:
    env.login(env.user)
    env.shoot("overview")
    env.go("/instances")
    name = unique("dashvm")
    env.driver.find_element(*by("css", "[data-open=launch]")).click()
    fill(env, {"l-name": name, "l-userdata": "#!/bin/sh\necho hello\n"})
    choose(env, "l-image", env.image)
    choose(env, "l-flavor", env.flavor)
    choose(env, "l-zone", env.zone)
    env.shoot("launch")
    env.driver.find_element(*by("css", "#launch button[type=submit]")).click()
    link = env.wait(lambda: env.driver.find_elements(*by("xpath", f"//a[.='{name}']")))
    server_id = link[0].find_element(*by("xpath", "./ancestor::tr")).get_attribute("data-id")
    try:
        assert cell(env, server_id, "status") == "BUILD"
        mark_page(env)
        env.node.beat({server_id: {"state": "running", "rebuild_serial": 0}})
        env.wait(lambda: cell(env, server_id, "status") == "ACTIVE")
        assert same_page(env), "the page reloaded instead of updating live"
        env.shoot("instances")
        env.go(f"/instances/{server_id}")
        assert env.wait(lambda: text_of(env, "#status") == "ACTIVE")  # a live part
        assert env.driver.find_element(*by("id", "console-title")).text == "Console log"
        env.shoot("instance")
        env.driver.find_element(*by("link text", "Follow the console live")).click()
        env.wait(lambda: env.driver.find_elements(*by("id", "console")))
        mark_page(env)
        line = unique("login")
        with env.node.http() as client:
            sent = client.put(f"/cluster/v1/nodes/{env.node.id}/instances/{server_id}/console",
                              json={"console": f"booting\n{line}: ready\n"})
        assert sent.status_code == 204, sent.text
        env.wait(lambda: f"{line}: ready" in env.driver.find_element(*by("id", "console")).text)
        assert same_page(env), "the console page reloaded instead of following"
    finally:
        env.cloud.openstack("server", "delete", server_id)
        env.node.beat({})


def test_member_creates_and_deletes_a_network_with_a_subnet(env: Env) -> None:
    env.login(env.user)
    env.go("/networks")
    name = unique("dashnet")
    fill(env, {"n-name": name, "n-subnet": name + "-sub", "n-cidr": "10.91.0.0/24"})
    env.driver.find_element(*by("xpath", "//button[.='Create network']")).click()
    env.wait(lambda: "10.91.0.0/24" in env.driver.page_source and name in
             env.driver.page_source)
    network = env.cloud.openstack("network", "show", name, "-f", "json", user=env.user)
    subnet = env.cloud.openstack("subnet", "show", network["subnets"][0], "-f", "json",
                                 user=env.user)
    assert subnet["cidr"] == "10.91.0.0/24" and subnet["name"] == name + "-sub"
    env.shoot("networks")
    env.driver.find_element(*by("css", f'button[aria-label="Delete network {name}"]')).click()
    env.driver.switch_to.alert.accept()
    env.wait(lambda: name not in env.driver.page_source)
    assert env.cloud.openstack("network", "list", "--name", name, "-f", "json",
                               user=env.user) == []
    assert env.cloud.openstack("subnet", "list", "--name", name + "-sub", "-f", "json",
                               user=env.user) == []


def test_member_uploads_an_image(env: Env) -> None:
    env.login(env.user)
    env.go("/images")
    name = unique("dashup")
    data = qcow2_bytes(700 * 1024)
    path = env.tmp / "upload.qcow2"
    path.write_bytes(data)
    fill(env, {"i-name": name})
    choose(env, "i-format", "qcow2")
    env.driver.find_element(*by("id", "i-file")).send_keys(str(path))
    env.driver.find_element(*by("xpath", "//button[.='Upload']")).click()
    env.wait(lambda: env.driver.find_elements(*by("xpath", f"//td[.='{name}']")))
    image = env.cloud.openstack("image", "show", name, "-f", "json", user=env.user)
    try:
        assert image["status"] == "active" and image["size"] == len(data)
        env.shoot("images")
    finally:
        env.cloud.openstack("image", "delete", image["id"])


def test_member_has_no_operator_pages_and_a_forced_url_is_403(env: Env) -> None:
    env.login(env.user)
    assert not env.driver.find_elements(*by("css", 'a[href$="/admin/nodes"]'))
    for path in ("/admin", "/admin/nodes", "/admin/flavors", "/admin/users", "/admin/roles",
                 "/admin/quotas", "/admin/map", f"/admin/nodes/{env.node.id}"):
        env.go(path)
        assert env.driver.find_element(*by("css", "h1")).text == "Forbidden (403)", path


def test_admin_sees_a_node_join_and_leave_live_and_makes_a_join_token(env: Env) -> None:
    env.login("admin")
    env.go("/admin/nodes")
    mark_page(env)
    node = JoinedNode(env.cloud, env.tmp, "dashlive")
    try:
        env.wait(lambda: cell(env, node.id, "name") == node.name)
        env.shoot("nodes")
    finally:
        node.remove()
    env.wait(lambda: cell(env, node.id, "name") == "")
    assert same_page(env), "the page reloaded instead of updating live"
    description = unique("dashtoken")
    fill(env, {"t-desc": description})
    env.driver.find_element(*by("xpath", "//button[.='Create join token']")).click()
    command = env.wait(lambda: env.driver.find_element(*by("id", "join-command")))
    assert command.get_attribute("value").startswith("atwill join ")
    env.driver.find_element(*by("xpath", "//button[.='Copy']")).click()
    # Copied, or (a clipboard refused to a headless browser) selected for Ctrl+C.
    env.wait(lambda: text_of(env, "#copy-state") in ("Copied.",
                                                    "Selected: press Ctrl+C to copy."))
    selected = env.driver.execute_script(
        "var t = document.getElementById('join-command');"
        "return t.value.substring(t.selectionStart, t.selectionEnd);")
    assert selected == command.get_attribute("value")
    revoke = f"//tr[td[.='{description}']]//button[.='Revoke']"
    env.driver.find_element(*by("xpath", revoke)).click()
    env.wait(lambda: not env.driver.find_elements(*by("xpath", revoke)))
    with env.cloud.http(env.cloud.token()) as client:
        tokens = {t["description"]: t["state"] for t in client.get("/cluster/v1/tokens").json()}
    assert tokens[description] == "revoked"


def test_logout_and_the_old_cookie_no_longer_works(env: Env) -> None:
    env.login(env.user)
    cookie = env.driver.get_cookie("atwill_dashboard")
    env.driver.find_element(*by("xpath", "//button[.='Log out']")).click()
    env.wait(lambda: env.driver.current_url.endswith("/dashboard/login"))
    env.driver.add_cookie({k: cookie[k] for k in ("name", "value", "path", "secure",
                                                  "httpOnly")})
    env.go("/instances")
    env.wait(lambda: env.driver.current_url.endswith("/dashboard/login"))


def test_member_creates_and_deletes_a_volume(env: Env) -> None:
    env.login(env.user)
    env.go("/volumes")
    name = unique("dashvol")
    fill(env, {"v-name": name, "v-size": "0"})
    env.driver.find_element(*by("xpath", "//button[.='Create volume']")).click()
    env.wait(lambda: "Size (GB) must be a whole number of at least 1" in
             env.driver.find_element(*by("css", "p.error")).text)
    env.go("/volumes")
    fill(env, {"v-name": name, "v-size": "1"})
    env.driver.find_element(*by("xpath", "//button[.='Create volume']")).click()
    env.wait(lambda: env.driver.find_elements(*by("xpath", f"//a[.='{name}']")))
    volume = env.cloud.openstack("volume", "show", name, "-f", "json", user=env.user)
    assert volume["size"] == 1
    env.shoot("volumes")
    env.driver.find_element(*by("css", f'button[aria-label="Delete volume {name}"]')).click()
    env.driver.switch_to.alert.accept()
    env.wait(lambda: name not in env.driver.page_source)
    assert env.cloud.openstack("volume", "list", "-f", "json", user=env.user) == []


def test_admin_sees_the_operator_overview_and_makes_and_removes_a_flavor(env: Env) -> None:
    env.login("admin")
    env.driver.find_element(*by("link text", "Operator")).click()
    env.wait(lambda: env.driver.find_element(*by("css", "h1")).text == "Operator overview")
    assert env.node.name in env.driver.page_source  # the module's node, in the node table
    env.shoot("operator")
    env.go("/admin/flavors")
    name = unique("dashflavor")
    fill(env, {"f-name": name, "f-vcpus": "2", "f-ram": "lots", "f-disk": "1"})
    env.driver.find_element(*by("xpath", "//button[.='Create flavor']")).click()
    env.wait(lambda: "RAM (MiB) must be a whole number" in env.driver.page_source)
    env.go("/admin/flavors")
    fill(env, {"f-name": name, "f-vcpus": "2", "f-ram": "96", "f-disk": "1"})
    env.driver.find_element(*by("xpath", "//button[.='Create flavor']")).click()
    env.wait(lambda: env.driver.find_elements(*by("xpath", f"//td[.='{name}']")))
    flavor = env.cloud.openstack("flavor", "show", name, "-f", "json")
    assert (flavor["vcpus"], flavor["ram"]) == (2, 96)
    env.shoot("flavors")
    env.driver.find_element(*by("css", f'button[aria-label="Delete flavor {name}"]')).click()
    env.driver.switch_to.alert.accept()
    env.wait(lambda: not env.driver.find_elements(*by("xpath", f"//td[.='{name}']")))
    assert name not in {f["Name"] for f in env.cloud.openstack("flavor", "list", "--all",
                                                               "-f", "json")}


def test_admin_makes_grants_revokes_and_deletes_a_role(env: Env) -> None:
    # A user of its own: revoking a grant revokes the user's tokens of that second, which
    # would log the module's member out of the next test.
    user = unique("dashrolu")
    env.cloud.openstack("user", "create", "--password", "pw-" + user, user)
    try:
        _grant_and_revoke(env, user)
    finally:
        env.cloud.openstack("user", "delete", user)


def _grant_and_revoke(env: Env, user: str) -> None:
    env.login("admin")
    env.go("/admin/roles")
    env.driver.find_element(*by("xpath", "//button[.='Grant role']")).click()
    env.wait(lambda: heading(env) == "Bad request (400)")
    assert "Choose a user, a project, a role" in env.driver.page_source
    role, project = unique("dashbrole"), env.cloud.users[env.user]["project"]
    env.go("/admin/roles")
    fill(env, {"r-name": role})
    env.driver.find_element(*by("xpath", "//button[.='Create role']")).click()
    env.wait(lambda: env.driver.find_elements(*by("xpath", f"//td[.='{role}']")))
    choose_text(env, "g-user", user)
    choose_text(env, "g-project", project)
    choose_text(env, "g-role", role)
    env.driver.find_element(*by("xpath", "//button[.='Grant role']")).click()
    revoke = f'button[aria-label="Revoke {role} on {project} from {user}"]'
    env.wait(lambda: env.driver.find_elements(*by("css", revoke)))
    held = env.cloud.openstack("role", "assignment", "list", "--user", user, "--names",
                               "-f", "json")
    assert role in {a["Role"] for a in held}
    env.shoot("roles")
    env.driver.find_element(*by("css", revoke)).click()
    env.driver.switch_to.alert.accept()
    env.wait(lambda: not env.driver.find_elements(*by("css", revoke)))
    env.driver.find_element(*by("css", f'button[aria-label="Delete role {role}"]')).click()
    env.driver.switch_to.alert.accept()
    env.wait(lambda: not env.driver.find_elements(*by("xpath", f"//td[.='{role}']")))
    assert role not in {r["Name"] for r in env.cloud.openstack("role", "list", "-f", "json")}


def test_member_reads_quotas_and_admin_changes_one(env: Env) -> None:
    env.login(env.user)
    env.go("/quotas")
    assert heading(env) == f"Quotas of {env.cloud.users[env.user]['project']}"
    assert env.driver.find_elements(*by("xpath", "//td[.='Floating IPs']"))
    env.shoot("quotas")
    project_id = env.cloud.openstack("project", "show", env.cloud.users[env.user]["project"],
                                     "-f", "json")["id"]
    env.login("admin")
    try:
        env.go(f"/admin/quotas?project={project_id}")
        fill(env, {"q-compute-instances": "many"})
        env.driver.find_element(*by("xpath", "//button[.='Save compute quotas']")).click()
        env.wait(lambda: heading(env) == "Bad request (400)")
        assert "Instances: the limit must be a whole number" in env.driver.page_source
        env.go(f"/admin/quotas?project={project_id}")
        fill(env, {"q-compute-instances": "7"})
        env.driver.find_element(*by("xpath", "//button[.='Save compute quotas']")).click()
        env.wait(lambda: env.driver.execute_script(
            "var e = document.getElementById('q-compute-instances'); return e && e.value;")
            == "7")
        env.shoot("admin-quotas")
        with env.cloud.http(env.cloud.token()) as client:
            shown = client.get(f"/compute/v2.1/os-quota-sets/{project_id}").json()
        assert shown["quota_set"]["instances"] == 7
    finally:
        with env.cloud.http(env.cloud.token()) as client:
            client.delete(f"/compute/v2.1/os-quota-sets/{project_id}")


def test_admin_cluster_map_shows_instances_and_a_node_joining_and_leaving_live(env: Env
                                                                               ) -> None:
    env.login("admin")
    name = unique("dashmapvm")
    server = env.cloud.openstack("server", "create", "--flavor", env.flavor, "--image",
                                 env.image, "--availability-zone", env.zone, "--no-network",
                                 name, "-f", "json")
    try:
        env.go("/admin/map")
        assert heading(env) == "Cluster map"
        row = f'#map-nodes tr[data-id="{env.node.id}"] td[data-col="instances"]'
        env.wait(lambda: name in text_of(env, row))
        mark_page(env)
        node = JoinedNode(env.cloud, env.tmp, "dashmap")
        try:
            env.wait(lambda: f"Node {node.name} joined" in text_of(env, "#map-log"))
            assert env.driver.find_elements(*by("css", f'g[data-node="{node.id}"]'))
            env.shoot("map")
        finally:
            node.remove()
        env.wait(lambda: f"Node {node.name} left." in text_of(env, "#map-log"))
        assert not env.driver.find_elements(*by("css", f'g[data-node="{node.id}"]'))
        assert same_page(env), "the map reloaded instead of updating live"
    finally:
        env.cloud.openstack("server", "delete", server["id"])


def test_admin_disables_enables_and_removes_a_node_from_its_page(env: Env) -> None:
    env.login("admin")
    node = JoinedNode(env.cloud, env.tmp, "dashrm")
    try:
        env.go("/admin/nodes")
        env.wait(lambda: env.driver.find_elements(*by("link text", node.name)))[0].click()
        env.wait(lambda: heading(env) == f"Node {node.name}")
        fill(env, {"n-reason": "x" * 300})
        env.driver.find_element(*by("xpath", "//button[.='Disable scheduling']")).click()
        env.wait(lambda: heading(env) == "Bad request (400)")
        assert "at most 255" in env.driver.page_source
        with env.cloud.http(env.cloud.token()) as client:
            assert client.get(f"/cluster/v1/nodes/{node.id}").json()["enabled"] is True
        env.go(f"/admin/nodes/{node.id}")
        fill(env, {"n-reason": "new disks"})
        env.driver.find_element(*by("xpath", "//button[.='Disable scheduling']")).click()
        env.wait(lambda: text_of(env, "#enabled") == "disabled: new disks")
        env.shoot("node")
        env.driver.find_element(*by("xpath", "//button[.='Enable scheduling']")).click()
        env.wait(lambda: text_of(env, "#enabled") == "enabled")
        env.driver.find_element(*by("xpath", "//button[.='Remove node']")).click()
        env.driver.switch_to.alert.accept()
        env.wait(lambda: heading(env) == "Nodes")
        with env.cloud.http(env.cloud.token()) as client:
            assert client.get(f"/cluster/v1/nodes/{node.id}").status_code == 404
    finally:
        node.remove()


def test_admin_drains_and_restores_a_node_from_its_page(env: Env) -> None:
    env.login("admin")
    node = JoinedNode(env.cloud, env.tmp, "dashdrain")
    try:
        node.beat()
        env.go(f"/admin/nodes/{node.id}")
        env.wait(lambda: text_of(env, "#drain-state") == "Not draining.")
        env.driver.find_element(*by("xpath", "//button[.='Drain']")).click()
        env.driver.switch_to.alert.accept()
        env.wait(lambda: text_of(env, "#enabled") == "disabled: draining")
        env.wait(lambda: text_of(env, "#drain-state") == "Drained: no instance is left on it.")
        with env.cloud.http(env.cloud.token()) as client:
            assert client.get(f"/cluster/v1/nodes/{node.id}/drain").json()["draining"]
        env.driver.find_element(*by("xpath", "//button[.='Restore']")).click()
        env.wait(lambda: text_of(env, "#enabled") == "enabled")
        assert text_of(env, "#drain-state") == "Not draining."
    finally:
        node.remove()


def test_member_gives_an_instance_a_floating_ip_and_snapshots_it(env: Env) -> None:
    net, fip, server_id = unique("dashfipnet"), None, None
    router = unique("dashfiprt")

    def osc(*args: str) -> Any:
        return env.cloud.openstack(*args, user=env.user)

    osc("network", "create", net)
    osc("subnet", "create", "--network", net, "--subnet-range", "10.94.0.0/24", net)
    osc("router", "create", router)
    osc("router", "set", router, "--external-gateway", "public")
    osc("router", "add", "subnet", router, net)
    try:
        server_id = osc("server", "create", "--flavor", env.flavor, "--image", env.image,
                        "--network", net, "--availability-zone", env.zone,
                        unique("dashfipvm"), "-f", "json")["id"]
        env.node.beat({server_id: {"state": "running"}})
        fip = osc("floating ip", "create", "public", "-f", "json")
        address = fip["floating_ip_address"]
        env.login(env.user)
        env.go(f"/instances/{server_id}")
        assert text_of(env, "#floating-ips") == "–"
        choose(env, "floating_ip", fip["id"])
        env.driver.find_element(*by("xpath", "//button[.='Associate']")).click()
        env.wait(lambda: address in text_of(env, "#floating-ips"))
        shown = osc("floating ip", "show", fip["id"], "-f", "json")
        assert shown["port_id"] and shown["fixed_ip_address"].startswith("10.94.0.")
        env.shoot("instance-floating-ip")
        env.driver.find_element(*by("xpath", f"//button[.='Disassociate {address}']")).click()
        env.wait(lambda: text_of(env, "#floating-ips") == "–")
        assert osc("floating ip", "show", fip["id"], "-f", "json")["port_id"] is None
        snapshot = unique("dashsnap")
        fill(env, {"snapshot_name": snapshot})
        env.driver.find_element(*by("xpath", "//button[.='Snapshot']")).click()
        env.wait(lambda: text_of(env, "#task") == "image_snapshot")
        (image,) = osc("image", "list", "--name", snapshot, "-f", "json")
        try:
            sent = env.node.upload(image["ID"], qcow2_bytes(64 * 1024))
            assert sent.status_code == 204, sent.text
            env.go("/images")
            row = f"//tr[td[.='{snapshot}']]/td[2]"
            assert env.driver.find_element(*by("xpath", row)).text == "active"
        finally:
            osc("image", "delete", image["ID"])
        env.go(f"/instances/{server_id}")
        env.driver.find_element(*by("xpath", "//button[.='Stop']")).click()
        env.wait(lambda: text_of(env, "#task") == "powering-off")
        env.node.beat({server_id: {"state": "shutoff"}})
        env.go(f"/instances/{server_id}")
        assert text_of(env, "#status") == "SHUTOFF"
        env.driver.find_element(*by("xpath", "//button[.='Start']")).click()
        env.wait(lambda: text_of(env, "#task") == "powering-on")
    finally:
        if fip:
            osc("floating ip", "delete", fip["id"])
        if server_id:
            env.cloud.openstack("server", "delete", server_id)
            env.node.beat({})
        osc("router", "remove", "subnet", router, net)
        osc("router", "delete", router)
        osc("network", "delete", net)


def test_member_attaches_a_volume_on_its_page_and_detaches_it_on_the_instance_s(
        env: Env) -> None:
    from tests.api.test_volume_api import gone
    from tests.api.volume_nodes import StorageNode

    storage = StorageNode(env.cloud, env.tmp, "dashstor")
    storage.keep_beating()
    server_id = vid = None
    try:
        name, vol = unique("dashattvm"), unique("dashattvol")
        server_id = env.cloud.openstack(
            "server", "create", "--flavor", env.flavor, "--image", env.image, "--no-network",
            "--availability-zone", env.zone, name, "-f", "json", user=env.user)["id"]
        env.node.beat({server_id: {"state": "running", "volumes": {}}})
        vid = env.cloud.openstack("volume", "create", "--size", "1", vol, "-f", "json",
                                  user=env.user)["id"]
        storage.converge()
        env.login(env.user)
        env.go("/volumes")
        env.driver.find_element(*by("link text", vol)).click()
        env.wait(lambda: heading(env) == f"Volume {vol}")
        choose(env, "a-server", server_id)
        env.driver.find_element(*by("xpath", "//button[.='Attach']")).click()
        env.wait(lambda: text_of(env, "#status") == "attaching")
        storage.converge()
        env.node.beat({server_id: {"state": "running", "volumes": {vid: "attached"}}})
        env.go(f"/volumes/{vid}")
        assert text_of(env, "#status") == "in-use"
        assert text_of(env, "#attached") == f"{name} (/dev/vdb)"
        env.shoot("volume-attached")
        env.go(f"/instances/{server_id}")
        env.driver.find_element(*by("css", f'button[aria-label="Detach volume {vol}"]')).click()
        env.driver.switch_to.alert.accept()
        env.wait(lambda: heading(env) == f"Instance {name}")
        env.node.beat({server_id: {"state": "running", "volumes": {}}})
        storage.converge()
        env.go(f"/instances/{server_id}")
        assert "No volume attached." in text_of(env, "#volumes")
        assert env.cloud.openstack("volume", "show", vid, "-f", "json",
                                   user=env.user)["status"] == "available"
    finally:
        if server_id:
            env.cloud.openstack("server", "delete", server_id)
            env.node.beat({})
        if vid:
            gone(env.cloud, storage, vid)
        storage.remove()


def active(env: Env) -> Any:
    return env.driver.execute_script("return document.activeElement")


def tab_to(env: Env, css: str, most: int = 80) -> None:
    """Press Tab until the element is focused, as a keyboard user reaches it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    target = env.driver.find_element(*by("css", css))
    for _ in range(most):
        if active(env) == target:
            return
        ActionChains(env.driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"{css} is not reached by the Tab key")


def test_a_keyboard_user_logs_in_and_opens_and_closes_the_launch_dialog(env: Env) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    env.driver.delete_all_cookies()
    env.go("/login")
    info = env.cloud.users[env.user]
    tab_to(env, "#user")
    keys = ActionChains(env.driver)
    for text in (env.user, info["password"], info["project"]):
        keys.send_keys(text).send_keys(Keys.TAB)
    keys.send_keys(Keys.ENTER).perform()  # in the domain field: Enter submits the form
    env.wait(lambda: "Overview of" in env.driver.page_source)
    env.go("/instances")
    # The first Tab reaches the skip link, which takes the focus past the menu.
    ActionChains(env.driver).send_keys(Keys.TAB).perform()
    assert text_of(env, ":focus") == "Skip to content"
    tab_to(env, "[data-open=launch]")
    ActionChains(env.driver).send_keys(Keys.ENTER).perform()
    env.wait(lambda: env.driver.execute_script(
        "return document.getElementById('launch').open"))
    focused = env.driver.execute_script(
        "return document.getElementById('launch').contains(document.activeElement)")
    assert focused, "the dialog opened without taking the focus"
    ActionChains(env.driver).send_keys(Keys.ESCAPE).perform()
    env.wait(lambda: not env.driver.execute_script(
        "return document.getElementById('launch').open"))


def test_member_reboots_and_hard_reboots_an_instance_from_its_page(env: Env) -> None:
    """Each button reaches Nova with its type; the status goes back to ACTIVE live."""
    server_id = env.cloud.openstack(
        "server", "create", "--flavor", env.flavor, "--image", env.image, "--no-network",
        "--availability-zone", env.zone, unique("dashrbvm"), "-f", "json",
        user=env.user)["id"]
    try:
        # The node reports the reboots it has done: none yet, so each stays pending.
        env.node.beat({server_id: {"state": "running", "reboot_serial": 0}})
        env.login(env.user)
        for serial, (label, status, hard) in enumerate(
                (("Reboot", "REBOOT", False), ("Hard reboot", "HARD_REBOOT", True)), 1):
            env.go(f"/instances/{server_id}")
            env.wait(lambda: text_of(env, "#status") == "ACTIVE", timeout=10)
            env.driver.find_element(*by("xpath", f"//button[.='{label}']")).click()
            env.wait(lambda s=status: text_of(env, "#status") == s)
            wanted = env.node.desired(server_id)
            assert (wanted["reboot_serial"], wanted["reboot_hard"]) == (serial, hard)
            mark_page(env)
            env.node.beat({server_id: {"state": "running", "reboot_serial": serial}})
            env.wait(lambda: text_of(env, "#status") == "ACTIVE" and
                     text_of(env, "#task") == "–", timeout=10)
            assert same_page(env), "the instance page reloaded instead of updating live"
        with env.cloud.http(env.cloud.token(env.user)) as client:
            found = client.get(f"/compute/v2.1/servers/{server_id}/os-instance-actions")
        assert [a["action"] for a in found.json()["instanceActions"]].count("reboot") == 2
    finally:
        env.cloud.openstack("server", "delete", server_id)
        env.node.beat({})


# Every value the upload's progress bar takes, kept across the page's reload at the end.
WATCH_PROGRESS = """
sessionStorage.removeItem("atwillProgress");
var bar = document.getElementById("i-progress"), seen = [];
new MutationObserver(function () {
  seen.push(bar.hidden ? -1 : Number(bar.value));
  sessionStorage.setItem("atwillProgress", JSON.stringify(seen));
}).observe(bar, {attributes: true, attributeFilter: ["value", "hidden"]});
"""


def test_the_image_upload_progress_bar_advances_and_completes(env: Env) -> None:
    env.login(env.user)
    env.go("/images")
    name = unique("dashprog")
    path = env.tmp / "progress.qcow2"
    path.write_bytes(qcow2_bytes(4 * 1024 * 1024))
    fill(env, {"i-name": name})
    choose(env, "i-format", "qcow2")
    env.driver.find_element(*by("id", "i-file")).send_keys(str(path))
    env.driver.execute_script(WATCH_PROGRESS)
    # About two seconds at 2 MB/s, so the browser reports the upload as it goes.
    env.driver.execute_cdp_cmd("Network.enable", {})
    env.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 2 * 1024 * 1024})
    try:
        env.driver.find_element(*by("xpath", "//button[.='Upload']")).click()
        env.wait(lambda: env.driver.find_elements(*by("xpath", f"//td[.='{name}']")),
                 timeout=15)
    finally:
        env.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        env.driver.execute_cdp_cmd("Network.disable", {})
    seen = env.driver.execute_script(
        "return JSON.parse(sessionStorage.getItem('atwillProgress') || '[]')")
    print(f"progress bar values: {seen}")
    image = env.cloud.openstack("image", "show", name, "-f", "json", user=env.user)
    try:
        assert image["status"] == "active" and image["size"] == 4 * 1024 * 1024
        shown = [v for v in seen if v >= 0]
        assert shown == sorted(shown), f"the bar went backwards: {seen}"
        assert any(0 < v < 100 for v in shown), f"the bar never showed a part done: {seen}"
        assert shown[-1] == 100, f"the bar did not reach 100: {seen}"
    finally:
        env.cloud.openstack("image", "delete", image["id"])


def test_member_deletes_a_security_group_rule_from_its_page(env: Env) -> None:
    group = unique("dashsgdel")
    made = env.cloud.openstack("security group", "create", group, "-f", "json", user=env.user)
    try:
        kept = env.cloud.openstack(
            "security group rule", "create", "--protocol", "tcp", "--dst-port", "22",
            "--remote-ip", "192.0.2.0/24", group, "-f", "json", user=env.user)
        gone = env.cloud.openstack(
            "security group rule", "create", "--protocol", "tcp", "--dst-port", "80",
            "--remote-ip", "198.51.100.0/24", group, "-f", "json", user=env.user)
        env.login(env.user)
        env.go("/security-groups")
        label = (f"Delete rule ingress IPv4 tcp ports 80–80 remote 198.51.100.0/24 "
                 f"of {group}")
        env.driver.find_element(*by("css", f'button[aria-label="{label}"]')).click()
        env.driver.switch_to.alert.accept()
        env.wait(lambda: not env.driver.find_elements(*by("css", f'tr[data-id="{gone["id"]}"]'))
                 and env.driver.find_elements(*by("css", f'tr[data-id="{kept["id"]}"]')))
        rules = env.cloud.openstack("security group rule", "list", made["id"], "-f", "json",
                                    user=env.user)
        assert {r["ID"] for r in rules} >= {kept["id"]}
        assert gone["id"] not in {r["ID"] for r in rules}
    finally:
        env.cloud.openstack("security group", "delete", made["id"], user=env.user)


# Counts what the page's own scripts ask for, installed before they run.
COUNT_REQUESTS = """
window.atwillAsked = {fetch: 0, xhr: 0, sources: []};
var realFetch = window.fetch;
window.fetch = function () {
  window.atwillAsked.fetch += 1; return realFetch.apply(this, arguments); };
var realOpen = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function () {
  window.atwillAsked.xhr += 1; return realOpen.apply(this, arguments); };
var RealSource = window.EventSource;
window.EventSource = function (url, init) {
  window.atwillAsked.sources.push(String(url)); return new RealSource(url, init); };
window.EventSource.prototype = RealSource.prototype;
"""


def test_the_instance_list_updates_by_one_event_stream_not_by_polling(env: Env) -> None:
    import time

    env.login(env.user)
    script = env.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                        {"source": COUNT_REQUESTS})["identifier"]
    try:
        env.go("/instances")
        env.wait(lambda: env.driver.execute_script("return document.readyState") == "complete")
        loaded = env.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        time.sleep(5)
        later = env.driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".map(e => [e.name, e.initiatorType])")
        asked = env.driver.execute_script("return window.atwillAsked")
    finally:
        env.driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                   {"identifier": script})
    print(f"requests by the page's scripts: {asked}; resources: {len(later)}")
    assert asked["fetch"] == 0 and asked["xhr"] == 0, asked
    assert [s.removeprefix(env.cloud.url) for s in asked["sources"]] == [
        f"{D}/instances/events"], asked
    # Over five seconds nothing more was fetched: no request repeated by a timer.
    assert [name for name, _kind in later] == loaded, later
    assert not [n for n, kind in later if kind in ("fetch", "xmlhttprequest")], later
