"""What the training engine reaches in the lab by name, so ``lyceum.train`` never imports ``lyceum.lab``:

    "lyceum.lab.hooks:lab_verifier"       the lab's addition verifier (``--verifier lab``)
    "lyceum.lab.hooks:render_template"    a lab prompt template (``select-prompts --template lab:<name>``)
"""

from __future__ import annotations

from lyceum.lab.tasks import parse_prompt, render_prompt, verify


def lab_verifier(row: dict, response: str) -> float:
    """The lab's addition verifier: 1.0 for a correct final answer. Reads the sum from the prompt text."""
    return verify(row["prompt"], response)


def render_template(question: str, name: str) -> str:
    """A lab addition question re-rendered in lab template ``name``."""
    return render_prompt(parse_prompt(question), name)
