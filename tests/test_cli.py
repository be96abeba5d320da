"""The CLI: help everywhere, a version, and user errors as one sentence without a traceback."""

import subprocess
import sys

import pytest

from lyceum.cli import SYSTEMS, main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lyceum", *args], check=False, capture_output=True, text=True,
                          env=env)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("lyceum ")


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_help_for_every_system(system):
    out = run_cli(system, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: lyceum " + system in out.stdout


def test_unknown_flag_is_one_sentence():
    out = run_cli("--definitely-not-a-flag")
    assert out.returncode == 2
    assert "error:" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_does_not_import_torch():
    code = "import sys; from lyceum.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_user_error_exits_2_without_traceback(capsys):
    from lyceum.errors import UserError

    def boom(args):
        raise UserError("the file x.jsonl does not exist")

    from lyceum import cli

    parser = cli.build_parser()
    args = parser.parse_args(["olympiad"])
    args.func = boom
    original = cli.build_parser
    try:
        cli.build_parser = lambda: _FixedParser(args)
        code = main([])
    finally:
        cli.build_parser = original
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: the file x.jsonl does not exist\n"


class _FixedParser:
    def __init__(self, args):
        self.args = args

    def parse_args(self, argv=None):
        return self.args
