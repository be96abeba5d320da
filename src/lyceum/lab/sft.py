"""Moved: supervised fine-tuning lives in ``lyceum.train.sft`` (cold start uses it; train imports nothing from lab).

This name stays until the lab's callers import ``lyceum.train.sft`` directly.
"""

from lyceum.train.sft import SFTConfig, collate, encode_rows, mean_loss, response_loss, sft  # noqa: F401
