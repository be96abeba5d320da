"""Served engines: vLLM and SGLang servers as a student sampler, a teacher, and a target for weight pushes.

    teacher = SGLangServer("http://gpu1:30000")                     # or VLLMServer("http://gpu1:8000", "qwen-7b")
    req = teacher_request(teacher.kind, support="union", k=16)      # refuses what this server cannot answer
    scores = run_sync(served_scores(teacher, ids, mask, start=P, topk=req.topk, given_ids=student_topk))
    sampler = VLLMServer("http://gpu0:8000", "student")
    rows = run_sync(sampler.sample(prompt_ids, n=4, max_new_tokens=512))   # token ids + sampled log-probs
    samples = to_samples(prompts, prompt_ids, rows, pad_id)           # the local sampler's Samples record
    sampler = ServedSampler(SGLangServer("http://gpu0:30000"), student_lm, weights_dir="/shared/ckpt")
    samples = sampler.sample(prompts, max_new_tokens=512, n=4); sampler.push_weights("12")   # LocalLM.sample's twin

docs/serving.md has the wire formats, the commands to start the servers, and what is wired into the CLI.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ServedEndpoint": "lyceum.models.served.transport",
    "VLLMServer": "lyceum.models.served.vllm",
    "VLLMWeightTransfer": "lyceum.models.served.vllm",
    "SGLangServer": "lyceum.models.served.sglang",
    "ServedSampler": "lyceum.models.served.sampler",
    "Completion": "lyceum.models.served.sampling",
    "to_samples": "lyceum.models.served.sampling",
    "TeacherRequest": "lyceum.models.served.teacher",
    "PositionScores": "lyceum.models.served.teacher",
    "teacher_request": "lyceum.models.served.teacher",
    "served_diagnostics": "lyceum.models.served.teacher",
    "served_scores": "lyceum.models.served.teacher",
    "dense_teacher_logits": "lyceum.models.served.teacher",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lyceum.models.served' has no attribute {name!r}")
