"""The evaluations of a training run: greedy accuracy on held-out rows before, during and after training.

Each evaluation is a row of ``metrics.jsonl`` with ``"event": "eval"``: accuracy, response length and stop
rate (``rollout.evaluate``), the gap recovery against a reference accuracy (the teacher's, for OPD), and the
AUROC of the sequence reward for telling right training rollouts from wrong ones, pooled since the last
evaluation.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from lyceum.runs import RunDir
from lyceum.train.diagnostics import auroc, gap_recovery
from lyceum.train.rollout import evaluate


@dataclass
class Evaluations:
    """Runs and records a run's evaluations; ``evals`` is what a checkpoint saves and a resume restores."""

    lm: Any
    rows: list[dict] | None
    verifier: Any
    max_new_tokens: int
    batch_size: int = 64
    autocast: Any = nullcontext
    reference_accuracy: float | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)
    pooled_reward: list[float] = field(default_factory=list)  # sequence rewards since the last evaluation
    pooled_correct: list[bool] = field(default_factory=list)
    # a served sampler (--rollout-url): evaluations decode there whenever it holds the trainer's weights, so the
    # trainer process never builds a decode cache; between pushes (--sync-every > 1) the trainer decodes itself
    sampler: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.rows and self.verifier)

    def pool(self, rewards: list[float], correct: list[bool]) -> None:
        self.pooled_reward += rewards
        self.pooled_correct += correct

    def run(self, step: int, log: RunDir) -> dict[str, Any] | None:
        """Evaluate now (after ``step`` optimizer steps), log the row and return it; None when not enabled."""
        if not self.enabled:
            return None
        self.lm.model.eval()
        s = self.sampler
        synced = s is not None and getattr(s, "policy_version", None) == getattr(s, "trainer_version", None)
        rec = {"event": "eval", "step": step,
               **evaluate(s if synced else self.lm, self.rows, self.verifier, max_new_tokens=self.max_new_tokens,
                          batch_size=self.batch_size, autocast=self.autocast)}
        if self.reference_accuracy is not None:
            rec["reference_accuracy"] = self.reference_accuracy
            before = self.evals[0]["accuracy"] if self.evals else rec["accuracy"]
            rec["gap_recovery"] = gap_recovery(before, rec["accuracy"], self.reference_accuracy)
        if self.pooled_reward:
            rec["auroc"] = auroc(self.pooled_reward, self.pooled_correct)
            self.pooled_reward, self.pooled_correct = [], []
        self.evals.append(rec)
        log.log_metrics(rec)
        log.log(f"eval at step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items() if isinstance(v, float)))
        return rec
