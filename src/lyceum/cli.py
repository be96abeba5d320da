"""`lyceum <system> <verb>`: one entry point, one sub-command per system.

Each system registers its verbs from a light ``commands`` module that imports nothing heavy at import time,
so `lyceum --help` and `lyceum olympiad grade` work without torch installed. Errors a user can cause become
one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lyceum import __version__
from lyceum.errors import UserError

# system name -> (module with `register(subparsers)`, one-line help)
SYSTEMS = {
    "distill": ("lyceum.train.distill_commands", "on-policy distillation: demo, train, probe, recipes"),
    "rl": ("lyceum.train.rl_commands", "curriculum RL on the same on-policy engine"),
    "lab": ("lyceum.lab.commands", "synthetic tasks and tiny models that reproduce the papers on a CPU"),
    "olympiad": ("lyceum.olympiad.commands", "HiPhO grading, medals, the self-verifying solver agent"),
    "research": ("lyceum.research.commands", "knowledgeable deep research over tables and documents"),
}

# verbs a higher layer adds to a system: `distill demo` is the lab's (its task and models), so train never
# imports lab; "module:function" is called with the system's sub-parsers
EXTRA_VERBS = {"distill": ["lyceum.lab.commands:register_demo"]}

# which extra brings a missing module; matplotlib comes with every extra, so it is named by the system
EXTRAS = {"torch": "train", "transformers": "train", "accelerate": "train", "safetensors": "train",
          "sympy": "olympiad", "math_verify": "olympiad", "pint": "olympiad", "pylatexenc": "olympiad",
          "pandas": "research", "duckdb": "research", "openpyxl": "research", "pyarrow": "research",
          "pypdf": "research", "markdown": "research", "wn": "research", "peft": "train",
          "tensorboard": "trackers", "wandb": "trackers"}
SYSTEM_EXTRAS = {"distill": "train", "rl": "train", "lab": "train", "olympiad": "olympiad", "research": "research"}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one sentence (and the usage) with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lyceum", description=__doc__.split("\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lyceum {__version__}")
    systems = parser.add_subparsers(dest="system", metavar="SYSTEM", parser_class=_Parser)
    for name, (module, help_text) in SYSTEMS.items():
        sub = systems.add_parser(name, help=help_text, description=help_text)
        verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
        importlib.import_module(module).register(verbs)
        for target in EXTRA_VERBS.get(name, []):
            module_name, _, function = target.partition(":")
            getattr(importlib.import_module(module_name), function)(verbs)
    return parser


def missing_dependency(error: ImportError, system: str | None) -> str:
    """One sentence naming the missing module and the extra that brings it."""
    missing = (getattr(error, "name", None) or str(error)).split(".")[0]
    extra = EXTRAS.get(missing) or SYSTEM_EXTRAS.get(system or "", "all")
    return f"a dependency is missing ({missing}); install it with: pip install 'lyceum[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # `lyceum` or `lyceum distill` alone: show the relevant help
        if args.system:
            parser.parse_args([args.system, "--help"])
        parser.print_help()
        return 0
    try:
        code = func(args)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except PermissionError as e:  # an --out or --db the user cannot write, a file they cannot read
        sys.stderr.write(f"error: permission denied: {e.filename or e}; choose a path you can write to\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except ImportError as e:
        sys.stderr.write(f"error: {missing_dependency(e, args.system)}\n")
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
