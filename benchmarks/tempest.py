"""Run OpenStack's own API test suite (Tempest, from PyPI) against a fresh atwill controller.

Not part of the CI run (it takes tens of minutes): `benchmarks/tempest.sh [REGEX ...]`.
It starts a controller on SQLite in a temporary directory, writes a tempest.conf for it
(pre-provisioned accounts made through the identity API: atwill's cloud admins are the
admin role on the admin project only, so Tempest's dynamic admins, made with the admin
role on projects of their own, would be mere project admins here),
runs the API tests that match the regexes, prints the pass/fail/skip counts per service
and the failing tests, and removes everything it made. Tests that need a booted server
are skipped by configuration (no compute node joins this controller): the API shapes,
policy and error paths are what this measures.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from atwill.devcloud import Cloud

DEFAULT = ["tempest.api.identity.v3", "tempest.api.identity.admin.v3", "tempest.api.image.v2",
           "tempest.api.network", "tempest.api.compute.flavors", "tempest.api.compute.keypairs",
           "tempest.api.compute.limits", "tempest.api.compute.quotas",
           "tempest.api.compute.admin.test_flavors", "tempest.api.compute.admin.test_aggregates",
           "tempest.api.compute.admin.test_availability_zone",
           "tempest.api.compute.admin.test_hypervisor", "tempest.api.compute.admin.test_services",
           "tempest.api.compute.test_versions"]


def conf(cloud: Cloud, accounts: Path, image: str, flavor: str, alt_flavor: str,
         public: str) -> str:
    return f"""[DEFAULT]
log_file = tempest.log
[auth]
admin_username = admin
admin_password = {cloud.admin_password}
admin_project_name = admin
admin_domain_name = Default
use_dynamic_credentials = False
test_accounts_file = {accounts}
default_credentials_domain_name = Default
[identity]
user_lockout_failure_attempts = 2
user_lockout_duration = 5
uri_v3 = {cloud.url}/identity/v3
auth_version = v3
ca_certificates_file = {cloud.cacert}
region = RegionOne
[identity-feature-enabled]
api_v2 = False
api_v2_admin = False
trust = False
security_compliance = True
project_tags = True
application_credentials = False
access_rules = False
[service_available]
nova = True
glance = True
neutron = True
cinder = False
swift = False
heat = False
[compute]
image_ref = {image}
image_ref_alt = {image}
flavor_ref = {flavor}
flavor_ref_alt = {alt_flavor}
min_microversion = 2.1
max_microversion = 2.96
[compute-feature-enabled]
console_output = True
resize = False
live_migration = False
shelve = False
snapshot = False
vnc_console = False
spice_console = False
serial_console = False
rescue = False
interface_attach = False
[image]
image_path =
[image-feature-enabled]
api_v2 = True
api_v1 = False
import_image = False
os_glance_reserved = True
[network]
public_network_id = {public}
floating_network_name = public
project_network_cidr = 10.100.0.0/16
[network-feature-enabled]
ipv6 = False
api_extensions = all
[validation]
run_validation = False
[oslo_concurrency]
# Tempest's default, /tmp/tempest-lock, keeps the account allocations of a killed run: the
# same accounts (same hashes) then stay taken and whole test classes fail in setUpClass.
lock_path = {accounts.parent}/lock
"""


def openstack(cloud: Cloud, *args: str) -> object:
    env = {**os.environ, "OS_AUTH_URL": f"{cloud.url}/identity/v3", "OS_USERNAME": "admin",
           "OS_PASSWORD": cloud.admin_password, "OS_PROJECT_NAME": "admin",
           "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
           "OS_IDENTITY_API_VERSION": "3", "OS_CACERT": cloud.cacert}
    shown = [] if args[:2] == ("role", "add") else ["-f", "json"]
    out = subprocess.run([str(Path(sys.executable).parent / "openstack"), *args, *shown],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip() else None


def accounts(cloud: Cloud, path: Path, projects: int = 5) -> None:
    """Admins (admin role on the admin project), and a member and a reader in each of
    several projects (Tempest asks for project readers and members of one project)."""
    rows = []
    for i in range(projects):
        project = f"tempest-{i}"
        openstack(cloud, "project", "create", "--or-show", project)
        for role, where in (("admin", "admin"), ("member", project), ("reader", project)):
            user, password = f"tempest-{role}-{i}", f"pw-tempest-{role}-{i}"
            openstack(cloud, "user", "create", "--or-show", "--password", password, user)
            openstack(cloud, "role", "add", "--project", where, "--user", user, role)
            rows.append(f"- username: {user}\n  project_name: {where}\n"
                        f"  password: {password}\n  roles: [{role}]\n"
                        + ("  types: [admin]\n" if role == "admin" else ""))
    # Tempest also asks for system-scoped readers and admins (Keystone's system scope).
    for role in ("reader", "admin"):
        user, password = f"tempest-system-{role}", f"pw-tempest-system-{role}"
        openstack(cloud, "user", "create", "--or-show", "--password", password, user)
        openstack(cloud, "role", "add", "--system", "all", "--user", user, role)
        rows.append(f"- username: {user}\n  system: all\n  password: {password}\n"
                    f"  roles: [{role}]\n")
    path.write_text("".join(rows))


def boot_refs(cloud: Cloud) -> tuple[str, str, str, str]:
    def run(*args: str) -> object:
        return openstack(cloud, *args)
    data = Path(tempfile.mkdtemp()) / "disk.img"
    data.write_bytes(b"\0" * 65536)
    image = run("image", "create", "--file", str(data), "--disk-format", "raw",
                      "--container-format", "bare", "--public", "tempest-image")["id"]
    shutil.rmtree(data.parent)
    flavor = run("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                       "tempest.tiny")["id"]
    alt = run("flavor", "create", "--ram", "128", "--disk", "1", "--vcpus", "1",
                    "tempest.small")["id"]
    public = run("network", "show", "public")["id"]
    return image, flavor, alt, public


RESULT = re.compile(r"\{\d+\} (tempest\.api\.(\w+)\.\S+)( \[[\d.]+s\])? \.\.\. (ok|FAILED|SKIPPED)")


def summarise(stream: str) -> dict[str, collections.Counter]:
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in stream.splitlines():
        found = RESULT.match(line)
        if found:
            per[found.group(2)][found.group(4)] += 1
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("regex", nargs="*", default=DEFAULT)
    parser.add_argument("--tempest", default=os.environ.get("TEMPEST", "tempest"))
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    cloud = Cloud()
    work = Path(tempfile.mkdtemp(prefix="atwill-tempest-"))
    try:
        cloud.init()
        # Tempest logs in thousands of times from one address, faster than the default
        # login rate limit allows; the lockout matches what tempest.conf tells its tests.
        cloud.configure(login_rate=1000.0, login_burst=1000, password_checks=8,
                        lockout_failure_attempts=2, lockout_duration=5)
        cloud.start()
        refs = boot_refs(cloud)
        # A workspace registry of its own: nothing is left in ~/.tempest.
        subprocess.run([args.tempest, "init", "--name", work.name, "--workspace-path",
                        str(work / "workspaces.yaml"), str(work / "ws")], check=True,
                       capture_output=True)
        accounts(cloud, work / "accounts.yaml")
        (work / "ws" / "etc" / "tempest.conf").write_text(
            conf(cloud, work / "accounts.yaml", *refs))
        run = subprocess.run(
            [args.tempest, "run", "--concurrency", str(args.concurrency), "--regex",
             "|".join(f"^{r}" for r in args.regex)], cwd=work / "ws", capture_output=True,
            text=True)
        (Path.cwd() / "tempest-last.log").write_text(run.stdout + run.stderr)
        per = summarise(run.stdout)
        for service, counts in sorted(per.items()):
            print(f"{service:10} ok {counts['ok']:4}  failed {counts['FAILED']:4}  "
                  f"skipped {counts['SKIPPED']:4}")
        failed = [m.group(1) for m in map(RESULT.match, run.stdout.splitlines())
                  if m and m.group(4) == "FAILED"]
        for name in failed:
            print("FAILED", name)
        print("full output: tempest-last.log")
        return 0
    finally:
        cloud.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
