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


def test_a_new_run_folder_is_0700_and_its_files_0600(tmp_path):
    run = RunDir.open(tmp_path / "runs" / "private", {"lr": 1})
    run.log_metrics({"step": 1})
    run.log("hello")
    run.write_json("summary.json", {"a": 1})
    run.write_text("report.md", "# r")
    assert oct(run.path.stat().st_mode & 0o777) == "0o700"
    for name in ("config.yaml", "metrics.jsonl", "run.log", "summary.json", "report.md"):
        assert oct((run.path / name).stat().st_mode & 0o777) == "0o600", name


def test_run_log_is_appended_with_a_header_per_opening(tmp_path):
    RunDir.create(tmp_path, "r").log("first process")
    RunDir.create(tmp_path, "r").log("second process")
    log = (tmp_path / "r" / "run.log").read_text()
    assert log.count("opened this run") == 2
    assert log.index("first process") < log.index("second process")


def test_resuming_keeps_earlier_rows_up_to_the_step_and_this_process_rows(tmp_path, capsys):
    first = RunDir.create(tmp_path, "r")
    for step in (1, 2, 3):
        first.log_metrics({"event": "train", "step": step})
    again = RunDir.create(tmp_path, "r")
    again.log_metrics({"event": "eval_teacher", "step": 0})  # written by this process before training starts
    again.continue_from(2)
    assert [(r["event"], r["step"]) for r in again.read_metrics()] == [("train", 1), ("train", 2),
                                                                      ("eval_teacher", 0)]
    assert "resuming at step 2" in capsys.readouterr().err


def test_starting_over_drops_every_earlier_row(tmp_path, capsys):
    first = RunDir.create(tmp_path, "r")
    first.log_metrics({"event": "train", "step": 1})
    again = RunDir.create(tmp_path, "r")
    again.continue_from(None)
    assert again.read_metrics() == []
    assert "starting over" in capsys.readouterr().err


def test_a_row_cut_short_by_a_kill_is_dropped_when_the_run_is_opened_again(tmp_path):
    first = RunDir.create(tmp_path, "r")
    first.log_metrics({"step": 1})
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')
    again = RunDir.create(tmp_path, "r")
    again.log_metrics({"step": 2})
    assert [r["step"] for r in again.read_metrics()] == [1, 2]
