"""Run folders: config, metrics and clear errors for malformed inputs."""

import json

import pytest
import yaml

from lyceum.errors import UserError
from lyceum.runs import RunDir, config_from_dict, load_config, progress, read_jsonl


def test_run_folder_holds_config_and_metrics(tmp_path):
    run = RunDir.create(tmp_path, "r1", {"lr": 1e-3, "path": tmp_path})
    run.log_metrics({"step": 1, "loss": 0.5})
    run.log_metrics({"step": 2, "loss": 0.25})
    run.log("hello")
    assert yaml.safe_load((tmp_path / "r1" / "config.yaml").read_text()) == {"lr": 1e-3, "path": str(tmp_path)}
    assert [m["loss"] for m in run.read_metrics()] == [0.5, 0.25]
    assert "hello" in (tmp_path / "r1" / "run.log").read_text()


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"x.jsonl:2 is not valid JSON"):
        read_jsonl(p)


def test_missing_and_malformed_config(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(listy)


def test_unknown_config_keys_are_listed():
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        lr: float = 1.0
        steps: int = 3

    assert config_from_dict(Cfg, {"lr": 0.1}) == Cfg(lr=0.1)
    with pytest.raises(UserError, match="unknown setting.*lrr.*valid settings are: lr, steps"):
        config_from_dict(Cfg, {"lrr": 0.1})


def test_progress_is_transparent_off_a_terminal():
    assert list(progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
