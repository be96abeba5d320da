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
    return parser


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
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        sys.stderr.write(f"error: a dependency is missing ({missing}); install the extras: pip install 'lyceum[all]'\n")
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
