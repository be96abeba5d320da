"""The curriculum contrast where it should matter: RL on sums the student mostly cannot do yet, over seeds.

    result = curriculum_contrast(Path("runs/lab/curriculum"), seeds=3)     # `lyceum lab reproduce --only curriculum`

The lab student (pattern R; 99% on 3-digit sums, about 30% on 4-digit ones, about 0% beyond) is RL-trained on
a pool of 4- to 6-digit sums, one third each, with no pass-rate filter: two thirds of the pool earn it almost
no reward, so a uniform draw spends most of its rollouts on groups with zero reward variance (no gradient).
The curriculum arm starts on the 4-digit bucket and opens the next one when the mean training reward over
``window`` steps reaches the threshold, P1-VL's "expand difficulty as pass rates rise". Both arms use the same
group size, generation length, learning rate and number of steps (equal rollout budget) and the same seeds;
each seed draws its own pool and rollouts. Held-out evaluation is greedy accuracy on fresh 4- and 5-digit sums.

The verdict follows the lab's rule (``lab.stats.compare``): a difference counts when it exceeds twice its
standard error, from the spread over seeds and never below the binomial error of the held-out prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lyceum.tables import fmt_share, markdown_table

POOL_DIGITS = (4, 6)
EVAL_DIGITS = (4, 5)  # held-out: one bucket the student half knows, one it does not
# GRPO at lr 5e-5: in pilots on the 4-digit bucket (40 steps, 8 x 8 rollouts) GSPO at 2e-4 left the reward
# flat, GRPO at 3e-4 took accuracy 34% -> 2-4%, both at 1e-3 collapsed it; GRPO at 5e-5 ended at 40% (docs/recipes.md)
SETTINGS = {"prompts_per_step": 8, "n": 8, "loss": "grpo", "lr": 5e-5, "warmup_steps": 0, "lr_schedule": "constant",
            "max_grad_norm": 1.0, "micro_batch_size": 64, "diagnostics_every": 0, "checkpoint_every": -1,
            "verifier": "lab", "device": "cpu", "dtype": "fp32", "pass_rate_k": 0, "difficulty_key": "digits",
            "thresholds": "0.4", "window": 3}
STEPS = 80
QUICK = {"prompts_per_step": 2, "n": 2, "micro_batch_size": 8}


def curriculum_contrast(out: Path, *, root: Path | None = None, seed: int = 0, quick: bool = False,
                        log: Callable[[str], None] = print, seeds: int = 3, steps: int | None = None):
    """Curriculum vs uniform RL on hard sums, ``seeds`` seeds from ``seed``; returns a ``ContrastResult``."""
    from lyceum.lab import tasks
    from lyceum.lab.models import accuracy, eval_rows, lab_model_dir, max_new_tokens
    from lyceum.lab.sections import ContrastResult, metric_series, plot_lines
    from lyceum.lab.stats import accuracy_sd, compare, mean, shown
    from lyceum.models.local import load_local
    from lyceum.train.rl import RLConfig, rl_train, stage_table

    out = Path(out)
    student = lab_model_dir("student", root=root, log=log)
    steps = steps or (2 if quick else STEPS)
    n_pool, n_eval = (12, 4) if quick else (300, 100)
    seed_list = [seed + i for i in range(1 if quick else seeds)]
    settings = {**SETTINGS, **(QUICK if quick else {}), "steps": steps, "max_new_tokens": max_new_tokens(POOL_DIGITS),
                "eval_every": 0}
    held_out = [r for d in EVAL_DIGITS for r in eval_rows(n_eval, digits=(d, d))]
    before = accuracy(load_local(student, device="cpu", dtype="fp32"), held_out)["by_digits"]

    per: dict[str, dict[str, list[float]]] = {"curriculum": {}, "uniform": {}}
    stages_seen: list[str] = []
    runs: dict[str, list[Path]] = {"curriculum": [], "uniform": []}
    for s in seed_list:
        pool = tasks.examples(tasks.make_problems(n_pool, digits=POOL_DIGITS, seed=40_000 + s))
        for name, curriculum in (("curriculum", True), ("uniform", False)):
            log(f"contrast curriculum: seed {s}, RL with {name} sampling")
            cfg = RLConfig(**settings, seed=s, curriculum=curriculum)
            lm = load_local(student, device="cpu", dtype="fp32")  # trained in place, then measured here
            res = rl_train(lm, pool, out / f"seed-{s}" / name, cfg, resume=False, desc=f"RL, {name}, seed {s}")
            runs[name].append(res.run.path)
            after = accuracy(lm, held_out)
            train = [r for r in res.run.read_metrics() if r.get("event") == "train"]
            got = per[name]
            for d in EVAL_DIGITS:
                got.setdefault(f"accuracy_{d}_before", []).append(before[str(d)])
                got.setdefault(f"accuracy_{d}_after", []).append(after["by_digits"][str(d)])
            got.setdefault("accuracy_after", []).append(after["accuracy"])
            got.setdefault("reward_mean", []).append(mean([r["reward"] for r in train]))
            got.setdefault("zero_variance_share", []).append(mean([r["zero_variance_share"] for r in train]))
            got.setdefault("stages", []).append(float(len(res.curriculum.stage_summaries())))
            if curriculum:
                stages_seen.append(f"Seed {s}:\n\n" + stage_table(res.curriculum.stage_summaries()))

    rollouts = steps * settings["prompts_per_step"] * settings["n"]
    n: dict[str, float] = {}
    for name, got in per.items():
        for key, vals in got.items():
            n[f"{name}_{key}"] = mean(vals)
        n[f"{name}_rollouts"] = float(rollouts)
    numbers_per_seed = {f"{name}_{key}_per_seed": vals for name, got in per.items() for key, vals in got.items()}

    def verdict(key: str) -> str:
        a, b = per["curriculum"][key], per["uniform"][key]
        return compare(a, b, accuracy_sd(mean(a), n_eval), accuracy_sd(mean(b), n_eval))

    hard, known = verdict(f"accuracy_{EVAL_DIGITS[1]}_after"), verdict(f"accuracy_{EVAL_DIGITS[0]}_after")
    table = [[label, shown(per["curriculum"][key], pct=pct), shown(per["uniform"][key], pct=pct)]
             for label, key, pct in (
                 (f"held-out {EVAL_DIGITS[0]}-digit accuracy before", f"accuracy_{EVAL_DIGITS[0]}_before", True),
                 (f"held-out {EVAL_DIGITS[0]}-digit accuracy after", f"accuracy_{EVAL_DIGITS[0]}_after", True),
                 (f"held-out {EVAL_DIGITS[1]}-digit accuracy before", f"accuracy_{EVAL_DIGITS[1]}_before", True),
                 (f"held-out {EVAL_DIGITS[1]}-digit accuracy after", f"accuracy_{EVAL_DIGITS[1]}_after", True),
                 ("mean training reward", "reward_mean", False),
                 ("share of zero-variance groups", "zero_variance_share", True),
                 ("curriculum stages reached", "stages", False))]
    table.append(["rollouts per arm and seed", str(rollouts), str(rollouts)])
    plots = [
        plot_lines(out / "curriculum_reward.png", "RL on 4-6 digit sums: training reward (first seed)", "mean reward",
              [(name, *metric_series(paths[0], "reward")) for name, paths in runs.items()], ylim=(-0.02, 1.02)),
        plot_lines(out / "curriculum_zero_variance.png", "Groups with zero reward variance (no gradient), first seed",
              "share of groups", [(name, *metric_series(paths[0], "zero_variance_share")) for name, paths in runs.items()],
              ylim=(-0.02, 1.02)),
    ]
    agree = {"higher": "agrees", "lower": "does not agree (uniform is better)", "tie": "does not agree (a tie)",
             "n/a": "cannot tell"}[hard]
    md = "\n".join([
        (f"Student: the lab student (pattern R). Pool per seed: {n_pool} sums of {POOL_DIGITS[0]}-{POOL_DIGITS[1]} "
         f"digits, no pass-rate filter, so most of it earns the student almost no reward. "
         f"{settings['loss'].upper()}, lab verifier, group size {settings['n']}, {settings['prompts_per_step']} prompts per step, {steps} steps, lr "
         f"{settings['lr']} in both arms (equal rollout budget), seeds {', '.join(map(str, seed_list))}. "
         f"Curriculum: digit buckets easiest first, the next opens when the mean training reward over "
         f"{settings['window']} steps reaches {settings['thresholds']}. Uniform: every bucket from the start. "
         f"Held-out: {n_eval} fresh sums each of {EVAL_DIGITS[0]} and {EVAL_DIGITS[1]} digits, greedy. "
         "Mean ± standard deviation over seeds."), "",
        markdown_table(["", "curriculum", "uniform"], table), "",
        "Curriculum stages:", "", "\n\n".join(stages_seen), "",
        (f"Reading: on the hard ({EVAL_DIGITS[1]}-digit) held-out sums the curriculum arm came out {hard} against "
         f"uniform ({fmt_share(n[f'curriculum_accuracy_{EVAL_DIGITS[1]}_after'], pct=True)} vs "
         f"{fmt_share(n[f'uniform_accuracy_{EVAL_DIGITS[1]}_after'], pct=True)}), and {known} on the "
         f"{EVAL_DIGITS[0]}-digit ones; a difference counts when it exceeds twice its standard error (spread over "
         f"seeds, at least the held-out sampling error). P1-VL's use of a curriculum: {agree}.")])
    numbers = {k: v for k, v in n.items() if v is not None}
    numbers["seeds"] = float(len(seed_list))
    result = ContrastResult("curriculum", "Curriculum vs uniform sampling for RL on hard sums, over seeds", md,
                            numbers, plots)
    result.numbers.update(numbers_per_seed)  # lists: the spread behind every mean
    return result

