"""Cosine similarity of the pg-mode gradients to each other and to the direct gradient of the renormalised KL.

    python benchmarks/pg_modes_cosine.py        # random logits, student top-16, on-policy (r = 1)
"""

import torch

from lyceum.train.losses import opd_loss


def grad(s, t, mode, k):
    x = s.clone().requires_grad_()
    opd_loss(x, t, None, torch.ones(s.shape[:2]), support="student_topk", k=k, mode=mode)[0].backward()
    return x.grad.flatten()


def main(B=8, T=64, V=1000, k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    s, t = 2 * torch.randn(B, T, V, generator=g), 2 * torch.randn(B, T, V, generator=g)
    d, paper, ours = (grad(s, t, m, k) for m in ("direct", "pg", "pg_renormalised"))
    cos = torch.nn.functional.cosine_similarity
    print(f"B={B} T={T} V={V} k={k}, logits 2*N(0,1): cos(pg, pg_renormalised) {cos(paper, ours, dim=0):.3f}; "
          f"vs direct: pg_renormalised {cos(ours, d, dim=0):.3f}, pg {cos(paper, d, dim=0):.3f}")


if __name__ == "__main__":
    main()
