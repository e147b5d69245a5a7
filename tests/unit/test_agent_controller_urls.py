"""The agent keeps the controllers its desired state lists in agent.yaml: replaced whole
and atomically when the list changes, never from a bad or empty list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from atwill.agent import config as agent_config
from atwill.agent.config import AgentConfig

JOINED = {"controller_url": "https://a:8686", "node_id": "n1", "name": "n",
          "controller_urls": ["https://a:8686", "https://b:8686"]}


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(JOINED))
    return AgentConfig.load(tmp_path)


def _saved(config: AgentConfig) -> list[str]:
    return yaml.safe_load((config.state_dir / "agent.yaml").read_text())["controller_urls"]


def test_a_controller_added_later_is_kept(config: AgentConfig) -> None:
    assert config.learn_controllers(["https://a:8686", "https://b:8686", "https://c:8686/"])
    assert _saved(config) == ["https://a:8686", "https://b:8686", "https://c:8686"]
    assert AgentConfig.load(config.state_dir).controller_urls == _saved(config)
    assert (config.state_dir / "agent.yaml").stat().st_mode & 0o777 == 0o600
    # The same list again writes nothing.
    assert not config.learn_controllers(["https://a:8686", "https://b:8686",
                                         "https://c:8686"])


@pytest.mark.parametrize("urls", [
    None, [], ["https://a:8686", "http://evil:80"], ["https://a:8686", "https://u@evil"],
    ["https://a:8686", "https://" + "x" * 300], [f"https://c{i}:1" for i in range(17)],
    "https://a:8686", [None]])
def test_a_bad_or_empty_list_is_ignored(config: AgentConfig, urls: object) -> None:
    before = (config.state_dir / "agent.yaml").read_bytes()
    assert not config.learn_controllers(urls)
    config.cache_desired({"revision": 3, "controllers": urls})
    assert config.controller_urls == JOINED["controller_urls"]
    assert (config.state_dir / "agent.yaml").read_bytes() == before


def test_a_failed_write_leaves_the_old_file_whole(config: AgentConfig,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = (config.state_dir / "agent.yaml").read_bytes()

    def replace_fails(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(agent_config.os, "replace", replace_fails)
    with pytest.raises(OSError):
        config.learn_controllers(["https://c:8686"])
    assert (config.state_dir / "agent.yaml").read_bytes() == before
    assert sorted(os.listdir(config.state_dir)) == ["agent.yaml"]  # no temporary left


def test_the_new_file_is_written_aside_then_renamed(config: AgentConfig,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: str, dst: str) -> None:
        # At the rename the new content is whole in the temporary, the old file intact.
        assert yaml.safe_load(Path(src).read_text())["controller_urls"] == ["https://c:8686"]
        assert _saved(config) == JOINED["controller_urls"]
        renamed.append((os.path.dirname(src), str(dst)))
        real(src, dst)
    monkeypatch.setattr(agent_config.os, "replace", replace)
    assert config.learn_controllers(["https://c:8686"])
    assert renamed == [(str(config.state_dir), str(config.state_dir / "agent.yaml"))]
    assert _saved(config) == ["https://c:8686"]
