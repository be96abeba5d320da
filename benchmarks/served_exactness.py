"""How exactly a served teacher reproduces the in-process OPD loss and gradient, per server and support.

Runs the lab's shipped student and teacher; the teacher answers over HTTP from tests/serving_server.py (vLLM's
and SGLang's wire formats). Prints one markdown row per (server, support): the absolute loss difference and the
largest absolute difference of the gradient w.r.t. the student's logits. Used in docs/serving.md.

    PYTHONPATH=src python benchmarks/served_exactness.py
"""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path

import torch

import lyceum
from lyceum.models.local import load_local
from lyceum.models.served import (
    SGLangServer,
    VLLMServer,
    dense_teacher_logits,
    served_scores,
    teacher_request,
)
from lyceum.train.losses import opd_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serving_server import ServingServer

CASES = [("vllm", "sampled"), ("vllm", "teacher_topk"), ("sglang", "sampled"), ("sglang", "teacher_topk"),
         ("sglang", "student_topk"), ("sglang", "intersection"), ("sglang", "union"),
         ("sglang", "symmetric_difference")]


def main(k: int = 8) -> None:
    checkpoints = Path(lyceum.__file__).parent / "lab" / "checkpoints"
    student, teacher = load_local(checkpoints / "student"), load_local(checkpoints / "teacher")
    server = ServingServer(copy.deepcopy(teacher)).start()
    try:
        s = student.sample(["12+34=", "7+5=", "40+2="], max_new_tokens=12, n=2, seed=0)
        ids, mask, start = s.sequences()
        tokens, resp_mask = ids[:, start:], mask[:, start:]
        with torch.no_grad():
            s_logits = student.logits(student.hidden_states(ids, mask))[:, start - 1: -1]
            t_logits = teacher.logits(teacher.hidden_states(ids, mask))[:, start - 1: -1]
        student_topk = student.score(ids, mask, start=start, topk=k).topk_ids
        print(f"{len(s)} rollouts, {int(resp_mask.sum())} response tokens, k = {k}\n")
        print("| server | support | loss | abs loss difference | max abs gradient difference |")
        print("|---|---|---:|---:|---:|")
        for kind, support in CASES:
            client = VLLMServer(server.url, "teacher") if kind == "vllm" else SGLangServer(server.url)
            req = teacher_request(kind, support, k)
            given = student_topk if req.given else None
            scores = asyncio.run(served_scores(client, ids, mask, start=start, topk=req.topk, given_ids=given))
            served = dense_teacher_logits(scores, tokens, teacher.vocab_size, given_ids=given)
            results = []
            for t in (t_logits, served):
                x = s_logits.clone().requires_grad_()
                loss, _ = opd_loss(x, t, tokens, resp_mask, support=support, k=k)
                loss.backward()
                results.append((loss.item(), x.grad))
            (l_local, g_local), (l_served, g_served) = results
            print(f"| {kind} | {support} | {l_local:.4f} | {abs(l_local - l_served):.1e} | "
                  f"{(g_local - g_served).abs().max().item():.1e} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
