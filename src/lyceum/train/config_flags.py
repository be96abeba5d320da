"""Command-line flags from a config dataclass: one --flag per field, layered as defaults < --config file < flags.

Shared by `distill train`, `distill cold-start` and `rl train`, so every training command reads settings the
same way and a new config field becomes a flag without touching the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_flags(p: argparse.ArgumentParser, cls, help_text: dict[str, str],
                     aliases: dict[str, list[str]] | None = None) -> None:
    """One --flag per field of the config dataclass ``cls`` (defaults stay in the dataclass)."""
    aliases = aliases or {}
    group = p.add_argument_group("settings (override --config)")
    for f in dataclasses.fields(cls):
        kind = {bool: parse_bool, int: int, float: float}.get(type(f.default), str)
        flag = "--" + f.name.replace("_", "-")
        # a bool flag alone means true (--freeze-vision), --no-NAME means false; --NAME false works too
        toggle = {"nargs": "?", "const": True} if kind is parse_bool else {}
        group.add_argument(flag, *aliases.get(f.name, []), dest=f"cfg_{f.name}",
                           type=kind, default=argparse.SUPPRESS, metavar=f.name.upper(),
                           help=f"{help_text.get(f.name, f.name)} (default: {f.default})", **toggle)
        if kind is parse_bool:
            group.add_argument("--no-" + flag[2:], dest=f"cfg_{f.name}", action="store_const", const=False,
                               default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace, cls):
    """Defaults, then the --config file, then explicit flags."""
    from lyceum.runs import config_from_dict, load_config

    data = load_config(args.config) if getattr(args, "config", None) else {}
    data.update({k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")})
    return config_from_dict(cls, data)
