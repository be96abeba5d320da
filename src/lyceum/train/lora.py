"""LoRA adapters on a local student (through peft): add them, switch them off, save, load and merge them.

    add_lora(lm, r=16, alpha=32, targets="all-linear")   # only the adapters require gradients now
    with base_weights(lm): ...                           # the base model: adapters off (the RL KL reference)
    lm.save("out/adapter")                               # the adapters alone (adapter_config.json + weights)
    merge_adapter("runs/x/checkpoint/adapter", "models/merged")   # base + B A folded in: a plain HF folder

The adapters are injected into ``lm.model`` in place (it stays the plain HF model, so the engine's forward
pieces, sampling and scoring are unchanged); ``lm.adapter`` keeps peft's wrapper for what only it knows:
switching adapters off, saving and loading just their weights. Nothing is copied: with LoRA the frozen base
weights are the reference policy, so an RL run with a KL term holds one model, not two.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

from lyceum.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _peft():
    try:
        import peft
    except ImportError as e:
        raise UserError("LoRA (lora_r > 0) needs the peft package: pip install 'lyceum[train]'") from e
    return peft


@contextmanager
def _quiet():
    """peft asks transformers 5 about checkpointing through a deprecated name: not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def target_modules(targets: str) -> str | list[str]:
    """``all-linear`` (every linear layer except the LM head) or the module names of a comma list."""
    text = targets.strip()
    return "all-linear" if text == "all-linear" else [t.strip() for t in text.split(",") if t.strip()]


def add_lora(lm, *, r: int, alpha: float, targets: str = "all-linear"):
    """Give ``lm``'s linear layers (``targets``) rank-``r`` adapters; freeze everything else. Returns ``lm``.

    peft initialises B to zero, so the adapted model starts as exactly the base model."""
    peft = _peft()
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=target_modules(targets), lora_dropout=0.0,
                             bias="none", task_type="CAUSAL_LM")
    try:
        with _quiet():
            wrapped = peft.get_peft_model(lm.model, config)
    except ValueError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot add LoRA adapters to {targets!r} of this model: {first}") from e
    if hasattr(wrapped.get_base_model().get_output_embeddings(), "lora_A"):
        # the losses read the LM head's weight directly (lyceum.train.logits), which would skip its adapter
        raise UserError("LoRA on the LM head is not supported (the losses read its weight directly); target the "
                        "decoder's linear layers, e.g. all-linear or q_proj,v_proj")
    # the merge step finds the base model through this path: keep it absolute
    name = str(getattr(lm.model, "name_or_path", "") or "")
    if name and Path(name).is_dir():
        wrapped.peft_config["default"].base_model_name_or_path = str(Path(name).resolve())
    lm.model = wrapped.get_base_model()
    lm.adapter = wrapped
    return lm


@contextmanager
def base_weights(lm):
    """Inside: ``lm`` computes as its base model (adapters switched off, eval mode); a no-op without adapters.

    With LoRA this is the frozen reference of a KL term: the weights the run started from, bit for bit."""
    adapter = getattr(lm, "adapter", None)
    if adapter is None:
        yield lm
        return
    was_training = lm.model.training
    lm.model.eval()
    try:
        with adapter.disable_adapter():
            yield lm
    finally:
        lm.model.train(was_training)


def load_adapter_weights(lm, folder: str | Path) -> None:
    """Put the adapter weights saved in ``folder`` into ``lm``'s adapters (same rank and targets)."""
    peft = _peft()
    from safetensors.torch import load_file

    folder = Path(folder)
    state = load_file(str(folder / ADAPTER_WEIGHTS), device=str(lm.device))
    result = peft.set_peft_model_state_dict(lm.adapter, state)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if getattr(result, "unexpected_keys", None) or missing:
        raise UserError(f"the adapters in {folder} do not fit this run's LoRA settings (rank or targets differ); "
                        f"use the run's own lora_r / lora_targets, or --restart")


def adapter_folder(path: str | Path) -> Path:
    """The adapter folder ``path`` names: the folder itself, or a run folder's ``checkpoint/adapter``."""
    path = Path(path)
    for candidate in (path, path / "adapter", path / "checkpoint" / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    raise UserError(f"no LoRA adapters in {path} (looked for {ADAPTER_CONFIG} there and in checkpoint/adapter)")


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | Path | None = None,
                  device: str = "cpu") -> Path:
    """Fold the adapters into their base model and save a plain HF model folder (loadable without peft)."""
    peft = _peft()
    from lyceum.models.local import load_local

    folder = adapter_folder(adapter)
    saved = json.loads((folder / ADAPTER_CONFIG).read_text())
    base = base or saved.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{folder / ADAPTER_CONFIG} does not name its base model; pass --base")
    lm = load_local(base, device=device, dtype="fp32")
    with _quiet():
        wrapped = peft.PeftModel.from_pretrained(lm.model, str(folder))
        lm.model = wrapped.merge_and_unload()
    return lm.save(out)
