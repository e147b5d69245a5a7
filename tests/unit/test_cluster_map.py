"""The cluster map's model: links by overlay shape, layout, node words, change sentences."""

from __future__ import annotations

from atwill.core.cluster_map import (
    CONTROLLER,
    HEIGHT,
    WIDTH,
    changes,
    layout,
    links,
    node_state,
    snapshot,
)


def node(ident: str, state: str = "up", ip: str | None = "10.9.0.2", **extra: object) -> dict:
    return {"id": ident, "name": f"n-{ident}", "state": state, "enabled": True,
            "overlay_ip": ip, "health": "up", "fence_state": None, **extra}


def test_wireguard_is_a_mesh_openvpn_a_star_and_none_has_no_links() -> None:
    nodes = [node("a"), node("b", state="down"), node("c"), node("d", ip=None)]
    mesh = {(link.a, link.b): link.up for link in links(nodes, "wireguard")}
    assert mesh == {(CONTROLLER, "a"): True, (CONTROLLER, "b"): False,
                    (CONTROLLER, "c"): True, ("a", "b"): False, ("a", "c"): True,
                    ("b", "c"): False}
    star = {(link.a, link.b) for link in links(nodes, "openvpn")}
    assert star == {(CONTROLLER, "a"), (CONTROLLER, "b"), (CONTROLLER, "c")}
    assert links(nodes, "none") == []


def test_a_fenced_node_s_links_are_down_and_it_is_called_fenced() -> None:
    nodes = [node("a"), node("b", fence_state="ok")]
    assert [link.up for link in links(nodes, "openvpn")] == [True, False]
    assert node_state(nodes[1]) == "fenced"
    assert node_state(node("c", enabled=False)) == "disabled"
    assert node_state(node("c", health="suspect")) == "suspect"
    assert node_state(node("c", state="down")) == "down"


def test_layout_puts_the_controller_in_the_middle_and_nodes_apart_inside() -> None:
    places = layout(["a", "b", "c"])
    assert places[CONTROLLER] == (WIDTH // 2, HEIGHT // 2)
    assert places["a"][0] == WIDTH // 2 and places["a"][1] < HEIGHT // 2  # first on top
    assert len(set(places.values())) == 4
    assert all(0 < x < WIDTH and 0 < y < HEIGHT for x, y in places.values())


def test_changes_say_joins_leaves_state_changes_and_moves() -> None:
    servers = [{"id": "s1", "name": "web", "host": "n-a"}, {"id": "s2", "name": "db",
                                                           "host": None}]
    before = snapshot([node("a"), node("b")], servers)
    assert changes(None, before) == []
    assert changes(before, before) == []
    moved = [{"id": "s1", "name": "web", "host": "n-c"}, {"id": "s2", "name": "db",
                                                          "host": "n-c"}]
    after = snapshot([node("a", fence_state="ok"), node("c")], moved)
    assert changes(before, after) == [
        "Node n-a: up → fenced.", "Node n-c joined (up).", "Node n-b left.",
        "Instance web moved from n-a to n-c."]


def test_every_node_label_fits_below_its_node() -> None:
    places = layout([str(n) for n in range(7)])
    # Two label lines reach 50 px below a node's centre (admin/map_view.html).
    assert all(y + 50 < HEIGHT and y - 18 > 0 for y in (p[1] for p in places.values()))
