"""The one exception type a user can cause.

Anything a user can get wrong (a bad path, an unreachable endpoint, malformed JSON, mismatched vocabularies)
raises ``UserError`` with one clear sentence. The CLI prints it and exits non-zero, never with a traceback.
"""


class UserError(Exception):
    """An error caused by the user's input or environment, reported as one sentence."""


def require_extra(module: str, extra: str):
    """Import ``module`` or explain which optional extra provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UserError(
            f"this command needs '{module}', which comes with the '{extra}' extra: pip install 'lyceum[{extra}]'"
        ) from e
