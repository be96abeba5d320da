"""Experiment trackers: mirror a run's metrics rows to TensorBoard and/or Weights & Biases.

``<run>/metrics.jsonl`` stays the record every report and resume reads; a tracker only mirrors each row as it
is written (``RunDir.log_metrics`` hands it to ``run.mirrors``), so turning one on changes no result.

    trackers = open_trackers("tensorboard,wandb", run, config=vars(cfg), start_step=0)
    ...                                          # every run.log_metrics(row) now also reaches both
    close_trackers(run)

TensorBoard writes event files to ``<run>/tensorboard`` (``tensorboard --logdir <run>/tensorboard``). Weights &
Biases writes under ``<run>/wandb``; with ``WANDB_MODE=offline`` it needs no network and no account, and
``wandb sync <run>/wandb/offline-run-*`` uploads the run later. A resumed run continues the same wandb run (its
id is kept in ``<run>/wandb_id``) and TensorBoard drops the events past the checkpoint's step, as
``metrics.jsonl`` does.

Scalars are named ``<event>/<metric>`` (``train/loss``, ``eval/accuracy``) and plotted against the row's step.
Nothing heavy is imported until a tracker is opened.
"""

from __future__ import annotations

import math
import os
import uuid
from typing import Any

from lyceum.errors import UserError

TRACKERS = ("tensorboard", "wandb")


def parse_report_to(text: str | None) -> list[str]:
    """The trackers a ``report_to`` setting names: ``none``, ``tensorboard``, ``wandb`` or a comma list."""
    names = [x.strip().lower() for x in str(text or "none").split(",") if x.strip()]
    if names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in TRACKERS]
    if bad:
        raise UserError(f"unknown tracker {bad[0]!r} in report_to; use none, {', '.join(TRACKERS)} or a comma "
                        f"list of them")
    return list(dict.fromkeys(names))


def scalars(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """A metrics row as (step, {"<event>/<name>": value}) over its finite numbers."""
    event = str(record.get("event", "train"))
    out = {}
    for key, value in record.items():
        if key in ("step", "event", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[f"{event}/{key}"] = float(value)
    return int(record.get("step", 0) or 0), out


class TensorBoardTracker:
    def __init__(self, folder, start_step: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError("report_to tensorboard needs the tensorboard package: pip install 'lyceum[trackers]'") from e
        # purge_step: a resumed run drops the events it is about to write again (metrics.jsonl does the same)
        self.writer = SummaryWriter(str(folder), purge_step=start_step + 1 if start_step else None)

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker:
    def __init__(self, run, config: dict[str, Any] | None = None):
        try:
            import wandb
        except ImportError as e:
            raise UserError("report_to wandb needs the wandb package: pip install 'lyceum[trackers]'") from e
        id_file = run.path / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "lyceum"), name=run.path.name, id=run_id,
                                  resume="allow", dir=str(run.path), config=config or {},
                                  settings=wandb.Settings(silent=True, console="off"))
        except Exception as e:  # no account, no network, a bad setting: wandb raises many kinds
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"wandb could not start a run ({first}); set WANDB_MODE=offline to keep it in the run "
                            f"folder without a network, or use --report-to tensorboard") from e
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        if values:
            self.run.log({**values, "step": step})

    def close(self) -> None:
        self.run.finish()


def open_trackers(report_to: str | None, run, *, config: dict[str, Any] | None = None,
                  start_step: int = 0) -> list[Any]:
    """Open the trackers ``report_to`` names and attach them to ``run`` (they see every later metrics row)."""
    trackers = []
    for name in parse_report_to(report_to):
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run.path / "tensorboard", start_step))
        else:
            trackers.append(WandbTracker(run, config))
    run.mirrors.extend(trackers)
    return trackers


def close_trackers(run) -> None:
    """Flush and close every tracker attached to ``run``."""
    while run.mirrors:
        run.mirrors.pop().close()
