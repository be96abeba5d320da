"""Statistics over seeds for the lab's contrasts: mean, spread, standard error and the verdict rule.

A difference counts when it exceeds ``Z`` standard errors, taken from the spread over seeds and never below the
sampling error of the held-out prompts (``compare``). Used by ``lab/contrasts.py`` and
``lab/curriculum_contrast.py``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from lyceum.tables import fmt_share

# a difference counts when it is more than this many standard errors (about 95% for a normal error)
Z = 2.0


def values(x: Any) -> list[float]:
    """The per-seed values of one measured quantity, without missing ones."""
    xs = x if isinstance(x, list) else [x]
    return [float(v) for v in xs if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean(x: Any) -> float:
    vs = values(x)
    return sum(vs) / len(vs) if vs else math.nan


def spread(x: Any) -> float:
    """Sample standard deviation over seeds (NaN with fewer than two)."""
    vs = values(x)
    return statistics.stdev(vs) if len(vs) > 1 else math.nan


def standard_error(x: Any, sampling_sd: float = 0.0) -> float:
    """Standard error of the mean over seeds, never below ``sampling_sd / sqrt(n)`` (the error every seed's
    number carries from its finite test set: three seeds that happen to agree do not make it exact)."""
    vs = values(x)
    if not vs:
        return math.nan
    between = statistics.variance(vs) if len(vs) > 1 else 0.0
    return math.sqrt(max(between, sampling_sd**2) / len(vs))


def accuracy_sd(p: float, n_eval: int) -> float:
    """Binomial standard deviation of one accuracy measured on ``n_eval`` prompts."""
    return math.sqrt(max(p * (1 - p), 0.0) / n_eval) if n_eval and not math.isnan(p) else 0.0


def compare(a: Any, b: Any, sampling_a: float = 0.0, sampling_b: float = 0.0) -> str:
    """'higher', 'lower' or 'tie' for ``a`` against ``b``: higher when the mean difference exceeds ``Z`` standard
    errors of the difference; 'n/a' when either is missing."""
    ma, mb = mean(a), mean(b)
    if math.isnan(ma) or math.isnan(mb):
        return "n/a"
    se = math.hypot(standard_error(a, sampling_a), standard_error(b, sampling_b))
    if abs(ma - mb) <= Z * se:
        return "tie"
    return "higher" if ma > mb else "lower"


def compare_accuracy(a: dict, b: dict, key: str, n_eval: int) -> str:
    """``compare`` for an accuracy field of two outcomes."""
    return compare(a.get(key), b.get(key), accuracy_sd(mean(a.get(key)), n_eval),
                   accuracy_sd(mean(b.get(key)), n_eval))


def shown(x: Any, *, pct: bool = False) -> str:
    """Mean, and ``± sd`` over seeds when there are several."""
    m, s = mean(x), spread(x)
    text = fmt_share(m, pct=pct)
    if not math.isnan(s):
        text += f" ± {100 * s:.1f}" if pct else f" ± {s:.3f}"
    return text
