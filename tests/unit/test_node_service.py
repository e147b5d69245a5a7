"""atwill node install-service: the systemd unit of the agent, and the cloud-init snippet."""

from __future__ import annotations

import configparser
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from atwill.agent import autojoin
from atwill.agent.autojoin import JoinSettings

BIN = Path(sys.executable).parent
SNIPPET = Path(__file__).parents[2] / "contrib" / "cloud-init" / "atwill-node.yaml"


def install(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "atwill"), "node", "install-service", "--unit-dir",
                           str(tmp_path / "units"), "--env-file", str(tmp_path / "join.env"),
                           "--state-dir", str(tmp_path / "node"), *extra],
                          capture_output=True, text=True, timeout=60)


def parse_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_the_unit_runs_the_agent_with_its_join_settings(tmp_path: Path) -> None:
    proc = install(tmp_path, "--url", "https://10.1.2.3:8686", "--token", "tok",
                   "--ca-hash", "sha256:ab", "--name", "n7")
    assert proc.returncode == 0, proc.stderr
    unit_path = tmp_path / "units" / "atwill-agent.service"
    unit = parse_unit(unit_path)
    service = unit["Service"]
    assert service["ExecStart"].split() == [
        str(BIN / "atwill"), "agent", "--state-dir", str(tmp_path / "node"),
        "--join-config", str(tmp_path / "join.env")]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == f"-{tmp_path / 'join.env'}"
    assert service["KillMode"] == "process", "restarting the agent must not kill the VMs"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    env = tmp_path / "join.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600, "the token is a secret"
    assert JoinSettings.find({}, env) == JoinSettings("https://10.1.2.3:8686", "tok",
                                                      "sha256:ab", "n7")
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit_path)],
                                capture_output=True, text=True, timeout=60)
        assert (verify.returncode, verify.stderr) == (0, "")


def test_install_service_refuses_half_the_settings_in_one_line(tmp_path: Path) -> None:
    proc = install(tmp_path, "--url", "https://10.1.2.3:8686")
    assert proc.returncode == 1
    assert "go together" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "units").exists() and not (tmp_path / "join.env").exists()


def test_the_cloud_init_snippet_writes_the_settings_and_starts_the_service() -> None:
    text = SNIPPET.read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    [env] = [f for f in data["write_files"] if f["path"] == str(autojoin.DEFAULT_CONFIG)]
    assert env["permissions"] == "0600"
    keys = [line.split("=")[0] for line in env["content"].splitlines()
            if line and not line.startswith("#")]
    assert keys == list(autojoin.REQUIRED)
    commands = [" ".join(map(str, c)) for c in data["runcmd"]]
    install_at = next(i for i, c in enumerate(commands) if "node install-service" in c)
    start_at = commands.index("systemctl enable --now atwill-agent.service")
    assert install_at < start_at
