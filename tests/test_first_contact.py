"""Issue 13, what a new user meets first: bad paths and flags as one sentence, the lab's outputs saying what
they measure, the demo reproducible across machines, verdicts that weigh the spread over seeds, readable plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lyceum.cli import main, missing_dependency

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def unwritable(tmp_path):
    """A folder path the user cannot create (a read-only folder; /sys for root, who may write anywhere else)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    candidates = [locked / "out", Path("/sys/lyceum-test-out")]
    for path in candidates:
        try:
            path.mkdir()
        except OSError:
            yield path
            locked.chmod(0o700)
            return
        path.rmdir()
    locked.chmod(0o700)
    pytest.skip("no unwritable location on this machine")


def test_demo_refuses_a_models_folder_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["distill", "demo", "--models", str(missing), "--out", str(tmp_path / "demo")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "demo").exists()


def test_demo_refuses_a_models_folder_without_the_lab_models(tmp_path, capsys):
    assert main(["distill", "demo", "--models", str(tmp_path), "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "lab model 'student' is not built in" in err and "make-models --out" in err
    assert not (tmp_path / "student").exists()  # nothing was built there


def test_reproduce_refuses_a_models_folder_that_does_not_exist(tmp_path, capsys):
    assert main(["lab", "reproduce", "--quick", "--models", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_unwritable_out_folders_are_one_sentence(unwritable, capsys):
    assert main(["lab", "reproduce", "--quick", "--out", str(unwritable)]) == 2
    assert main(["lab", "tasks", "-n", "2", "--out", str(unwritable / "rows.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 2


def test_probe_checks_k_before_loading_any_model(tmp_path, capsys):
    # the model paths do not exist: the flag check must come first
    assert main(["distill", "probe", "--student", str(tmp_path / "s"), "--teacher", str(tmp_path / "t"),
                 "--prompts", str(tmp_path / "p.jsonl"), "--k", "0"]) == 2
    assert "--k must be at least 1, got 0" in capsys.readouterr().err


def test_cuda_without_cuda_is_one_sentence():
    import torch

    from lyceum.errors import UserError
    from lyceum.models.local import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="sees no CUDA GPU"):
        resolve_device("cuda:1")


def test_a_missing_dependency_names_the_extra_that_brings_it():
    assert "pip install 'lyceum[research]'" in missing_dependency(ImportError(name="duckdb"), "research")
    assert "pip install 'lyceum[train]'" in missing_dependency(ImportError(name="torch"), "olympiad")
    # matplotlib comes with every extra: the system being run decides
    assert "'lyceum[olympiad]'" in missing_dependency(ImportError(name="matplotlib"), "olympiad")
    assert "'lyceum[train]'" in missing_dependency(ImportError(name="matplotlib.pyplot"), "lab")


def test_lab_tasks_prints_each_problem_in_both_thinking_patterns(capsys):
    assert main(["lab", "tasks", "-n", "3", "--digits", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln[:3] for ln in lines] == ["R  ", "L  "] * 3
    r, l_ = lines[0][3:], lines[1][3:]
    assert r.split("\\nA: ")[0] == l_.split("\\nA: ")[0]  # the same problem
    assert r.rsplit("#", 1)[1] == l_.rsplit("#", 1)[1]  # the same answer, reached two ways


def test_lab_models_says_which_sums_each_accuracy_is_on(capsys):
    assert main(["lab", "models"]) == 0
    out = capsys.readouterr().out
    assert "1-4 digit sums" in out and "4-digit sums" in out and "held-out" in out


def test_the_license_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


# ------------------------------------------------------------------------------------------------ reproducibility


def _capability(env: dict[str, str]) -> str:
    code = ("from lyceum.lab.reproducible import pin_cpu_kernels; import torch; pins = pin_cpu_kernels(); "
            "torch.ones(4).sum(); print(torch.backends.cpu.get_cpu_capability(), sorted(pins.items()))")
    full = {**{k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")},
            "PYTHONPATH": str(ROOT / "src"), **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_pin_chooses_avx2_kernels_before_torch_does_and_a_users_choice_wins():
    from lyceum.lab.reproducible import has_avx2

    if not has_avx2():
        pytest.skip("no AVX2 on this CPU: nothing is pinned")
    assert _capability({}) == "AVX2 [('ATEN_CPU_CAPABILITY', 'avx2'), ('MKL_CBWR', 'AVX2')]"
    assert _capability({"ATEN_CPU_CAPABILITY": "default"}).startswith("DEFAULT [('ATEN_CPU_CAPABILITY', 'default')")


# ------------------------------------------------------------------------------------------------ verdicts


def _arm(after, before=0.3, teacher=0.99, overlap=0.7, loss=0.1):
    return {"accuracy_before": before, "accuracy_after": after, "teacher_accuracy": teacher,
            "gap_recovery": None, "initial": {"overlap_ratio": overlap}, "final": {}, "loss_mean": loss,
            "error": None}


def test_a_difference_inside_the_spread_over_seeds_is_a_tie():
    from lyceum.lab import contrasts

    # 7 points apart on average, but the seeds scatter by about 10: no evidence either way
    assert contrasts.compare([0.80, 0.70, 0.90], [0.72, 0.62, 0.85]) == "tie"
    # the same means with seeds that agree: a real difference
    assert contrasts.compare([0.80, 0.81, 0.79], [0.72, 0.73, 0.71]) == "higher"


def test_seeds_that_agree_still_carry_the_sampling_error_of_the_test_set():
    from lyceum.lab import contrasts

    # three identical seeds: the spread is 0, but 200 held-out sums still leave ~3.5 points of noise per arm
    same = contrasts.compare_accuracy({"a": [0.50, 0.50, 0.50]}, {"a": [0.45, 0.45, 0.45]}, "a", n_eval=200)
    assert same == "tie"
    assert contrasts.compare_accuracy({"a": [0.50] * 3}, {"a": [0.35] * 3}, "a", n_eval=200) == "higher"


def test_mechanism_verdict_uses_the_spread():
    from lyceum.lab import contrasts

    arms = {"student top-k": _arm([0.80, 0.70, 0.90]), "overlap only (intersection)": _arm([0.72, 0.62, 0.85]),
            "symmetric difference only": _arm([0.0, 0.0, 0.0])}
    verdict, why = contrasts._judge_mechanism(arms, 200)
    assert verdict == "agrees"  # a 7-point gap the seeds cannot resolve is "about as good"
    assert "top-k 0.800 ± 0.100" in why


@pytest.mark.timeout(600)
def test_reproduce_over_seeds_reports_mean_and_spread_and_keeps_finished_seeds(tmp_path):
    from lyceum.lab import contrasts

    logs: list[str] = []
    report = contrasts.reproduce(tmp_path, quick=True, only=["granularity"], seeds=[0, 1], log=logs.append)
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert numbers["seeds"] == [0, 1] and numbers["runs"] == {"0": "seed-0", "1": "seed-1"}
    for s in (0, 1):
        per_seed = json.loads((tmp_path / f"seed-{s}" / "numbers.json").read_text())
        assert per_seed["config"]["seed"] == s and len(per_seed["outcomes"]) == 3
        assert (tmp_path / f"seed-{s}" / "report.md").exists()
    text = report.read_text()
    assert "seeds 0, 1" in text and " ± " in text and "[seed 1](seed-1/report.md)" in text
    assert (tmp_path / "granularity.png").stat().st_size > 0
    # the same command again keeps both seeds instead of running them again
    logs.clear()
    contrasts.reproduce(tmp_path, quick=True, only=["granularity"], seeds=[0, 1], log=logs.append)
    assert sum("kept from" in line for line in logs) == 2


# ------------------------------------------------------------------------------------------------ plots


def test_a_nearly_constant_series_is_drawn_flat():
    from lyceum.tables import readable_ylim

    assert readable_ylim([24.0, 24.01, 23.99]) == pytest.approx((17.9875, 30.0125))
    assert readable_ylim([40.0, 41.5, 39.8], floor=0.0) == pytest.approx((0.0, 45.65))
    assert readable_ylim([0.1, 0.5, 0.9]) is None  # varied data: matplotlib's own limits


def test_run_plots_put_loss_and_grad_norm_on_their_own_axes_and_name_k(tmp_path):
    import matplotlib.image
    import yaml

    from lyceum.runs import RunDir
    from lyceum.train.report import plot_run

    run = RunDir.open(tmp_path / "run", {"diagnostics_k": 4, "support": "student_topk", "k": 8})
    for step in range(1, 11):
        run.log_metrics({"event": "train", "step": step, "loss": 0.2 + 0.01 * step, "grad_norm": 45.0 - step,
                         "overlap_ratio": 0.7, "response_length": 40.0 + (step % 2) * 0.1})
    paths = {p.name: p for p in plot_run(run)}
    assert {"loss.png", "overlap.png", "length.png"} <= set(paths)
    assert yaml.safe_load((run.path / "config.yaml").read_text())["diagnostics_k"] == 4
    wide = matplotlib.image.imread(paths["loss.png"]).shape[1]
    narrow = matplotlib.image.imread(paths["length.png"]).shape[1]
    assert wide > 1.5 * narrow  # two panels side by side: loss and gradient norm each get their own y axis


def test_distill_demo_is_the_labs_verb_and_building_the_cli_imports_no_torch():
    code = ("import sys; from lyceum.cli import build_parser; "
            "args = build_parser().parse_args(['distill', 'demo', '--steps', '3']); "
            "print(args.func.__module__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["lyceum.lab.commands", "False"]
