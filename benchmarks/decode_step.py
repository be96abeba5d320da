"""The two per-token costs of decoding 8 rows on a CPU that LocalLM.sample optimises, old way vs new way.

    python benchmarks/decode_step.py          # one torch thread; CPU milliseconds per decode step

- the LM head: ``linear(h, W)`` (what the model's forward does) vs ``W @ h.T`` (streams the weight);
- the draw: one float64 cumulative sum over the vocabulary vs the two-level inverse CDF (``_inverse_cdf``).
"""

import time

import torch

from lyceum.models.local import _inverse_cdf


def cpu_ms(f, reps: int = 20) -> float:
    f()
    t = time.process_time()
    for _ in range(reps):
        f()
    return (time.process_time() - t) / reps * 1000


def one_level(weights, u):
    cdf = weights.cumsum(-1, dtype=torch.float64)
    return torch.searchsorted(cdf, u * cdf[:, -1:])


@torch.no_grad()
def measure(vocab: int, rows: int, hidden: int) -> tuple[float, float, float, float]:
    w, h = torch.randn(vocab, hidden), torch.randn(rows, hidden)
    weights, u = torch.rand(rows, vocab), torch.rand(rows, 1, dtype=torch.float64)
    return (cpu_ms(lambda: torch.nn.functional.linear(h, w)), cpu_ms(lambda: (w @ h.T).T),
            cpu_ms(lambda: one_level(weights, u)), cpu_ms(lambda: _inverse_cdf(weights, u)))


def main(rows: int = 8, hidden: int = 256) -> None:
    torch.set_num_threads(1)
    for vocab in (32_000, 151_936):
        linear, streamed, one, two = measure(vocab, rows, hidden)
        print(f"V={vocab:,}: LM head linear {linear:.1f} ms, W @ h.T {streamed:.1f} ms; "
              f"draw one-level {one:.2f} ms, two-level {two:.2f} ms")


if __name__ == "__main__":
    main()
