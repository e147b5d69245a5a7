"""core/catalog_rebase: each controller answers the catalog with its own URL, the public
interface with the load balancer's (public_endpoint) when set; other hosts untouched."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from atwill.config import Settings, load
from atwill.controller.controllers import register
from atwill.controller.db.base import Base
from atwill.controller.db.identity import Endpoint, Region, Service
from atwill.controller.db.session import Database
from atwill.controller.ha_controllers_bundle import ADDED_FILE
from atwill.controller.identity.tokens import build_catalog, catalog_rebase
from atwill.core.catalog_rebase import checked_public_endpoint, origin, rebase_for

CTL1, CTL2, LB = "https://ctl1.example:8686", "https://10.0.0.3:8686", "https://cloud.example"


def test_origin_is_scheme_and_netloc_lowercased() -> None:
    assert origin("HTTPS://Ctl1.Example:8686/compute/v2.1") == "https://ctl1.example:8686"
    assert origin("http://10.0.0.3") == "http://10.0.0.3"
    for bad in ("ftp://x", "https://", "not a url", "https://x:99999/"):
        assert origin(bad) is None


def test_a_controller_alone_answers_as_stored() -> None:
    rebase = rebase_for(CTL1, "", [])
    for interface in ("public", "internal", "admin"):
        assert rebase.url(f"{CTL1}/compute/v2.1", interface) == f"{CTL1}/compute/v2.1"


def test_the_second_controller_answers_with_its_own_url() -> None:
    # The rows name the first controller (its init); the second knows it from its bundle.
    rebase = rebase_for(CTL2, "", [CTL1, CTL2])
    for interface in ("public", "internal", "admin"):
        assert rebase.url(f"{CTL1}/image", interface) == f"{CTL2}/image"
    assert rebase.url(f"{CTL1}/orchestration/v1/%(project_id)s", "public") == \
        f"{CTL2}/orchestration/v1/%(project_id)s"


def test_the_public_endpoint_wins_on_the_public_interface_only() -> None:
    rebase = rebase_for(CTL2, LB, [CTL1, CTL2])
    assert rebase.url(f"{CTL1}/network", "public") == f"{LB}/network"
    assert rebase.url(f"{CTL1}/network", "internal") == f"{CTL2}/network"
    assert rebase.url(f"{CTL1}/network", "admin") == f"{CTL2}/network"
    # Rows written with the load balancer's URL (init with public_endpoint set) as well.
    assert rebase.url(f"{LB}/volume/v3", "internal") == f"{CTL2}/volume/v3"
    assert rebase.url(f"{LB}/volume/v3", "public") == f"{LB}/volume/v3"


def test_an_endpoint_on_another_host_is_answered_as_stored() -> None:
    rebase = rebase_for(CTL2, LB, [CTL1, CTL2])
    for url in ("https://swift.example:8080/v1/AUTH_%(project_id)s",
                "https://ctl1.example:9999/compute/v2.1",  # another port: another service
                "http://ctl1.example:8686/compute/v2.1"):  # another scheme
        assert rebase.url(url, "public") == url
    assert rebase.url("https://CTL1.example:8686/x", "public") == f"{LB}/x"


@pytest.mark.parametrize("value,expected", [
    ("", ""), ("https://cloud.example", "https://cloud.example"),
    ("https://cloud.example:8686/", "https://cloud.example:8686"),
    (" http://10.0.0.9:80 ", "http://10.0.0.9:80"), ("https://[fd00::1]:8686", "https://[fd00::1]:8686")])
def test_public_endpoint_accepted(value: str, expected: str) -> None:
    assert checked_public_endpoint(value) == expected


@pytest.mark.parametrize("value", [
    "cloud.example", "ftp://cloud.example", "https://", "https://cloud.example/atwill",
    "https://user@cloud.example", "https://cloud.example?x=1", "https://cloud.example#f",
    "https://cloud.example:99999", "https://cloud example", "https://" + "a" * 250 + ".x"])
def test_public_endpoint_refused_with_a_reason(value: str) -> None:
    with pytest.raises(ValueError, match="public_endpoint: expected"):
        checked_public_endpoint(value)


def test_a_bad_public_endpoint_in_the_settings_is_refused_at_load(tmp_path) -> None:
    (tmp_path / "atwill.yaml").write_text("public_endpoint: https://cloud.example/path\n")
    with pytest.raises(ValueError, match="public_endpoint: expected"):
        load(tmp_path)
    (tmp_path / "atwill.yaml").write_text("public_endpoint: https://cloud.example:8686/\n")
    assert load(tmp_path).public_endpoint == "https://cloud.example:8686"


# Review of issue 19 (session 15): controller_urls may name a load balancer that is no
# controller; a loopback own URL is no URL for another machine; public_endpoint's host.


def test_a_load_balancer_in_controller_urls_is_answered_as_stored(tmp_path) -> None:
    # Failed before: every controller_urls origin was taken for a controller, so rows an
    # operator pointed at the load balancer got this controller's own (maybe private) URL.
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example",
                        controller_urls="https://lb.example:8686,https://ctl1.example:8686")
    rebase = catalog_rebase(settings)
    for interface in ("public", "internal", "admin"):
        assert rebase.url("https://lb.example:8686/compute/v2.1", interface) == \
            "https://lb.example:8686/compute/v2.1"
    assert rebase.url(f"{CTL1}/image", "internal") == f"{CTL1}/image"  # its own


def test_an_added_controller_rebases_the_url_its_bundle_names(tmp_path) -> None:
    (tmp_path / ADDED_FILE).write_text(json.dumps({"cloud_url": CTL1}))
    rebase = catalog_rebase(Settings(state_dir=tmp_path, public_host="10.0.0.3"))
    assert rebase.url(f"{CTL1}/network", "public") == f"{CTL2}/network"
    assert rebase.url("https://lb.example:8686/network", "public") == \
        "https://lb.example:8686/network"


def test_registered_controllers_are_rebased_without_a_query_per_token(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        Base.metadata.create_all(database.engine)
        with database.session() as session:
            session.add(Region(id="RegionOne"))
            service = Service(type="compute", name="nova")
            session.add(service)
            session.flush()
            for url in (f"{CTL1}/compute/v2.1", "https://lb.example:8686/compute/v2.1"):
                session.add(Endpoint(service_id=service.id, interface="public",
                                     region_id="RegionOne", url=url))
            register(session, CTL1)
        rebase = catalog_rebase(Settings(state_dir=tmp_path, public_host="10.0.0.3"))
        with database.session() as session:
            statements = []
            event.listen(database.engine, "before_cursor_execute",
                         lambda *args: statements.append(args[2]))
            urls = [sorted(e["url"] for s in build_catalog(session, rebase=rebase)
                           for e in s["endpoints"]) for _ in range(3)]
        assert urls[0] == urls[2] == ["https://10.0.0.3:8686/compute/v2.1",
                                      "https://lb.example:8686/compute/v2.1"]
        assert sum("controllers" in s for s in statements) <= 1
    finally:
        database.dispose()


def test_a_row_elsewhere_is_not_rebased_to_a_loopback_url() -> None:
    # Failed before: a controller without public_host answered 127.0.0.1 for the rows.
    rebase = rebase_for("https://127.0.0.1:8686", "", [CTL1])
    for interface in ("public", "internal"):
        assert rebase.url(f"{CTL1}/image", interface) == f"{CTL1}/image"
    assert rebase_for("https://127.0.0.1:8686", LB, [CTL1]).url(f"{CTL1}/x", "public") == \
        f"{LB}/x"
    # Loopback rows (controllers on one machine) are still rebased to loopback.
    rebase = rebase_for("https://127.0.0.1:8002", "", ["https://127.0.0.1:8001"])
    assert rebase.url("https://127.0.0.1:8001/x", "public") == "https://127.0.0.1:8002/x"
    assert rebase_for("https://localhost:8002", "", ["https://[::1]:8001"]).url(
        "https://[::1]:8001/x", "admin") == "https://localhost:8002/x"


@pytest.mark.parametrize("value", [
    "https://$(id)", "https://`id`", "https://a;b.example", "https://a$b:8686",
    "https://-bad.example", "https://a..b", "https://" + "a" * 64 + ".example",
    "https://x'y.example", "https://a\\b"])
def test_public_endpoint_host_is_an_address_or_a_dns_name(value: str) -> None:
    # Failed before: accepted, and openrc wrote it unquoted (sourcing it ran the command).
    with pytest.raises(ValueError, match="public_endpoint: expected"):
        checked_public_endpoint(value)
    assert checked_public_endpoint("https://Cloud-1.example.:8686") == \
        "https://Cloud-1.example.:8686"


def test_a_bundle_from_an_added_controller_names_the_rows_url(tmp_path) -> None:
    # Failed before: it named the exporting controller's own URL, so a controller added
    # from it did not know the first controller's rows for a controller's.
    from atwill.controller import ha_controllers_bundle as bundle
    from tests.unit.test_ha_controllers_bundle import _state

    settings = _state(tmp_path)
    assert bundle.collect(settings)["cloud_url"] == "https://a.example:8686"
    (settings.state_dir / ADDED_FILE).write_text(json.dumps({"cloud_url": CTL1}))
    assert bundle.collect(settings)["cloud_url"] == CTL1
