"""`atwill lab up --controllers N --database postgresql`: names, addresses, PostgreSQL's
command lines, the cloud's name, and what is refused before anything is built (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from atwill.lab import Lab, database, naming
from atwill.lab.cluster import LabError
from atwill.lab.controllers import check, planned_urls, set_controller_urls, share_images
from atwill.lab.hosts import cloud_names
from atwill.lab.state import Host, LabState


def test_controllers_are_ctl_then_ctl2_on_their_own_addresses() -> None:
    assert [naming.controller_name(i) for i in (1, 2, 3)] == ["ctl", "ctl2", "ctl3"]
    octets = [naming.controller_octet(i) for i in range(1, naming.MAX_CONTROLLERS + 1)]
    assert octets == list(range(2, 9))  # clear of the database (.9) and the nodes (.10-)
    assert naming.DATABASE_OCTET not in octets and naming.DATABASE_OCTET < \
        naming.FIRST_NODE_OCTET
    with pytest.raises(ValueError, match="1 to 7 controllers"):
        naming.controller_name(8)


def test_the_first_controller_lists_every_controller() -> None:
    net = naming.subnet("ab").network_address
    assert planned_urls("ab", 2) == f"https://{net + 2}:8686,https://{net + 3}:8686"


@pytest.mark.parametrize(("controllers", "kind", "overlay", "message"), [
    (2, "sqlite", "none", "--database postgresql"),
    (2, "postgresql", "openvpn", "--overlay wireguard or none"),
    (1, "mysql", "wireguard", "expected one of sqlite, postgresql"),
    (9, "postgresql", "none", "1 to 7 controllers"),
])
def test_refused_before_anything_is_built(tmp_path: Path, controllers: int, kind: str,
                                          overlay: str, message: str) -> None:
    with pytest.raises((LabError, ValueError), match=message):
        check(controllers, kind, overlay)
    with pytest.raises((LabError, ValueError), match=message):
        Lab("ab", tmp_path / "lab").up(controllers=controllers, database=kind,
                                       overlay=overlay)
    assert list(tmp_path.iterdir()) == []


def test_one_controller_on_either_database_is_fine() -> None:
    check(1, "sqlite", "wireguard")
    check(2, "postgresql", "wireguard")  # each controller its own WireGuard peer
    check(1, "postgresql", "openvpn")
    check(2, "postgresql", "none")


def test_postgres_runs_as_its_user_from_its_own_directories() -> None:
    bindir = Path("/usr/lib/postgresql/15/bin")
    argv = database.as_postgres(database.server_argv(bindir, "/lab/pg", "172.31.9.9"),
                                "/lab/pg")
    assert argv[:5] == ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                        "--"]
    assert argv[5:8] == ["env", "-C", "/lab/pg"]  # exec in place: the PID is postgres's
    server = argv[8:]
    assert server[:3] == [str(bindir / "postgres"), "-D", "/lab/pg/data"]
    assert ["-k", "/lab/pg/run"] == server[3:5] and ["-p", "5432"] == server[5:7]
    assert "listen_addresses=172.31.9.9" in server
    assert "dynamic_shared_memory_type=mmap" in server  # nothing left in /dev/shm
    init = database.initdb_argv(bindir, "/lab/pg")
    assert init[:3] == [str(bindir / "initdb"), "-D", "/lab/pg/data"]
    assert "--pwfile" in init and "/lab/pg/password" in init


def test_the_newest_installed_server_is_used(tmp_path: Path) -> None:
    with pytest.raises(database.DatabaseError, match="apt-get install postgresql"):
        database.bin_dir(tmp_path)
    for version in ("9", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "postgres").touch()
    (tmp_path / "16" / "bin").mkdir(parents=True)  # no server binary: not installed
    assert database.bin_dir(tmp_path) == tmp_path / "15" / "bin"


def test_the_controllers_log_in_by_password_from_the_lab_wan() -> None:
    assert database.hba_line("172.31.9.0/24") == "host all all 172.31.9.0/24 scram-sha-256\n"
    assert database.url("172.31.9.9", "s3cret") == \
        "postgresql://atwill:s3cret@172.31.9.9:5432/atwill"


def _state(tmp_path: Path) -> LabState:
    state = LabState(name="ab", directory=str(tmp_path), subnet="172.31.9.0/24",
                     cloud_host=naming.cloud_host("ab"))
    for name, role, octet in (("ctl", "controller", 2), ("ctl2", "controller", 3),
                              ("node1", "node", 10)):
        state.hosts[name] = Host(name=name, role=role, namespace=f"awl-ab-{name}",
                                 address=f"172.31.9.{octet}/24", state_dir=str(tmp_path),
                                 wan_veth=f"w-{name}")
    return state


def test_the_cloud_name_resolves_to_every_controller(tmp_path: Path) -> None:
    text = cloud_names(_state(tmp_path))
    named = [line.split() for line in text.splitlines() if "cloud.ab.lab" in line]
    assert named == [["172.31.9.2", "cloud.ab.lab"], ["172.31.9.3", "cloud.ab.lab"]]
    assert "localhost" in text  # the machine's own names stay


def test_controller_urls_are_set_in_the_first_controllers_file(tmp_path: Path) -> None:
    (tmp_path / "atwill.yaml").write_text(yaml.safe_dump({"port": 8686}))
    set_controller_urls(str(tmp_path), "https://a:1,https://b:1")
    assert yaml.safe_load((tmp_path / "atwill.yaml").read_text()) == {
        "port": 8686, "controller_urls": "https://a:1,https://b:1",
        "overlay_endpoint": "a"}  # its own address: nodes' WireGuard dials it


def test_the_controllers_share_one_image_directory(tmp_path: Path) -> None:
    first, other = tmp_path / "ctl", tmp_path / "ctl2"
    first.mkdir()
    (other / "images").mkdir(parents=True)  # made empty by `controller add`
    share_images(str(first), str(other))
    (first / "images" / "img").write_text("bytes")
    assert (other / "images" / "img").read_text() == "bytes"
    (other / "images").unlink()
    (other / "images").mkdir()
    (other / "images" / "own").touch()
    with pytest.raises(OSError):  # a controller's own images are never thrown away
        share_images(str(first), str(other))


class FakeLab:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def kill_controller(self, *args: object) -> None:
        self.calls.append(("kill", *args))

    def start_controller(self, *args: object) -> None:
        self.calls.append(("start", *args))


def test_the_lab_commands_kill_and_start_a_named_controller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from atwill.cli import lab as lab_cli

    fake = FakeLab()
    monkeypatch.setattr(lab_cli, "_load", lambda name, directory: fake)
    runner = CliRunner()
    for args in (["kill-controller", "ctl2"], ["start-controller", "ctl2"],
                 ["start-controller"]):
        result = runner.invoke(lab_cli.app, args)
        assert result.exit_code == 0, result.output
    assert fake.calls == [("kill", "ctl2"), ("start", 120, "ctl2"), ("start", 120, "ctl")]


def test_the_database_password_stays_off_command_lines_and_out_of_readable_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command line is readable by every local user in /proc; lab.json holds the URL."""
    from atwill.lab import cluster, commands

    url = "postgresql://atwill:s3cret@172.31.9.9:5432/atwill"
    state = LabState(name="ab", directory=str(tmp_path), subnet="172.31.9.0/24",
                     database="postgresql", database_url=url)
    state.save()
    assert (tmp_path / "lab.json").stat().st_mode & 0o777 == 0o600
    assert LabState.load(tmp_path).database_url == url
    ran: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(commands, "run_in", lambda ns, argv, **kw: ran.append(
        (list(argv), dict(kw.get("env") or {}))))
    monkeypatch.setattr(cluster.hosts, "namespace", lambda host: None)
    ctl = Host(name="ctl", role="controller", namespace="awl-ab-ctl",
               address="172.31.9.2/24", state_dir=str(tmp_path / "ctl"), wan_veth="w-ctl")
    lab = Lab("ab", tmp_path)
    lab._state = state
    lab._init_controller(ctl, "none")
    (argv, env), = ran
    assert "s3cret" not in " ".join(argv)
    assert env[commands.DATABASE_URL_ENV] == url
