"""What makes a bigger student fit: the settings that trade compute or trainable weights for memory.

    prepare_student(lm, cfg)     # gradient checkpointing and/or LoRA adapters, as the config asks

``gradient_checkpointing``: the model's own (Hugging Face) activation checkpointing; each decoder layer keeps
only its input for the backward pass and recomputes the rest, so activation memory falls from every layer's
intermediates to one layer's, for about one more forward pass of compute. The loss and gradients are the same.
``lora_r``: LoRA adapters (``lyceum.train.lora``); the base weights are frozen, so there are no gradients or
AdamW state for them. Measured and estimated sizes: docs/performance.md, "Memory".
"""

from __future__ import annotations

from lyceum.errors import UserError


def enable_gradient_checkpointing(lm) -> None:
    model = lm.model
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise UserError(f"{type(model).__name__} does not support gradient checkpointing; drop --gradient-checkpointing")
    # non-reentrant: works with frozen inputs (LoRA) and needs no inputs that require gradients
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name from transformers 5 on
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def prepare_student(lm, cfg):
    """Apply ``cfg``'s memory settings to ``lm`` in place (once: a student that has adapters keeps them)."""
    if cfg.lora_r and getattr(lm, "adapter", None) is None:
        import torch

        from lyceum.train.lora import add_lora

        # peft draws the A matrices at random: from the run's seed, so a run is reproducible and every process
        # of an --fsdp run starts from the same adapters (fully_shard keeps each process's slice of its own)
        cuda = [lm.device.index or 0] if lm.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(cfg.seed)
            add_lora(lm, r=cfg.lora_r, alpha=cfg.lora_alpha, targets=cfg.lora_targets)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    return lm


def describe_student(lm) -> str:
    """One line for the run log: how many weights train, and the memory settings in force."""
    params = list(lm.model.parameters())
    trainable, total = sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    what = ["LoRA adapters" if getattr(lm, "adapter", None) is not None else "every weight"]
    if any(getattr(m, "gradient_checkpointing", False) is True for m in lm.model.modules()):  # HF's layer flag
        what.append("gradient checkpointing")
    return f"training {trainable:,} of {total:,} parameters ({', '.join(what)})"


def saved_activation_bytes(model, fn):
    """Run ``fn()`` and count the bytes autograd keeps for the backward pass, other than ``model``'s weights.

    Returns ``(fn's result, bytes)``. A tracked quantity rather than a timing or an RSS reading: it is exact and
    the same on every machine. Under gradient checkpointing the layers' own hooks replace their saved tensors by
    recipes to recompute them, so only what stays alive is counted (the layer inputs the recompute starts from
    are held by the checkpoint itself and not seen here: about layers x tokens x hidden values)."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(kept.values())
