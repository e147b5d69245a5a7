"""Heat's custom parameter constraints (nova.flavor, glance.image, neutron.network, …)
checked at create with Heat's message, through the real `openstack stack create`: a
value the stack's project cannot use is refused before anything is made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.test_orchestration_stacks import Env, make_env
from tests.cloud import Cloud, unique

TEMPLATE = {
    "heat_template_version": "2021-04-16",
    "parameters": {
        "flavor": {"type": "string", "constraints": [{"custom_constraint": "nova.flavor"}]},
        "image": {"type": "string", "constraints": [{"custom_constraint": "glance.image"}]},
        "net": {"type": "string", "constraints": [{"custom_constraint": "neutron.network"}]},
        "nets": {"type": "comma_delimited_list", "default": "public",
                 "constraints": [{"custom_constraint": "neutron.network"}]},
        "cidr": {"type": "string", "default": "10.0.0.0/24",
                 "constraints": [{"custom_constraint": "net_cidr"}]},
    },
    "resources": {"nothing": {"type": "OS::Heat::None"}},
}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(cloud, tmp_path_factory, "heatcc")


@pytest.fixture(scope="module")
def names(cloud: Cloud) -> Iterator[dict[str, str]]:
    flavor, image = unique("ccflv"), unique("ccimg")
    cloud.openstack("flavor", "create", "--ram", "64", "--vcpus", "1", flavor)
    private = unique("ccprivflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--vcpus", "1", "--private", private)
    image_id = cloud.openstack("image", "create", "--public", image, "-f", "json")["id"]
    try:
        yield {"flavor": flavor, "image": image, "private_flavor": private}
    finally:
        cloud.openstack("image", "delete", image_id)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("flavor", "delete", private)


def params(**given: str) -> list[str]:
    out = []
    for key, value in given.items():
        out += ["--parameter", f"{key}={value}"]
    return out


def test_values_the_project_can_use_pass(env: Env, names: dict[str, str]) -> None:
    name = unique("ccok")
    made = env.create("-t", env.template(TEMPLATE), *params(
        flavor=names["flavor"], image=names["image"], net="public"), name)
    assert made["stack_status"] == "CREATE_COMPLETE", made
    env.delete(name)


@pytest.mark.parametrize(("given", "message"), [
    ({"flavor": "no-such-flavor"}, "Parameter 'flavor' is invalid: Error validating value "
     "'no-such-flavor': The Flavor (no-such-flavor) could not be found."),
    ({"image": "no-such-image"}, "Parameter 'image' is invalid: Error validating value "
     "'no-such-image': The Image (no-such-image) could not be found."),
    # The admin project's own network is not the member's to use.
    ({"net": "private"}, "Parameter 'net' is invalid: Error validating value 'private': "
     "Unable to find network with name or id 'private'"),
    ({"nets": "public,nowhere"}, "Error validating value 'nowhere': Unable to find network"),
    ({"cidr": "10.0.0.0/33"}, "Parameter 'cidr' is invalid: Error validating value "
     "'10.0.0.0/33': Invalid net cidr: 10.0.0.0/33"),
])
def test_values_that_name_nothing_usable_are_refused_before_anything_is_made(
        env: Env, names: dict[str, str], given: dict[str, str], message: str) -> None:
    values = {"flavor": names["flavor"], "image": names["image"], "net": "public", **given}
    name = unique("ccbad")
    failed = env.stack("create", "-t", env.template(TEMPLATE), *params(**values), name,
                       check=False)
    assert failed.returncode != 0
    assert message in failed.stderr, failed.stderr
    assert env.shown(name) is None


def test_a_private_flavor_without_access_is_not_found(env: Env,
                                                      names: dict[str, str]) -> None:
    failed = env.stack("create", "-t", env.template(TEMPLATE), *params(
        flavor=names["private_flavor"], image=names["image"], net="public"),
        unique("ccpriv"), check=False)
    assert f"The Flavor ({names['private_flavor']}) could not be found." in failed.stderr
