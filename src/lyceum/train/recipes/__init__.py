"""Recipes for when on-policy distillation struggles: short functions composing the engine, not subclasses.

- ``cold_start``: the teacher answers, a verifier keeps the correct answers, the student is SFT-ed on them,
  then OPD continues from that checkpoint (off-policy cold start).
- ``select_prompts``: re-wrap prompts in the teacher's template and keep the prompts the teacher-student
  diagnostics favour, plus a share of out-of-distribution ones.
- ``length``: a maximum response length that grows on a schedule.
"""
