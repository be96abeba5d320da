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
        from lyceum.train.lora import add_lora

        add_lora(lm, r=cfg.lora_r, alpha=cfg.lora_alpha, targets=cfg.lora_targets)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    return lm
