"""Run folders: every run writes its resolved config, metrics (JSONL), logs and outputs to one place.

    run = RunDir.create("runs", "demo", config)
    run.log_metrics({"step": 1, "loss": 0.3})
    for x in progress(items, desc="scoring"): ...
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml

from lyceum.errors import UserError

T = TypeVar("T")


def jsonable(x: Any) -> Any:
    """Make a config value serialisable (paths, dataclasses, tuples)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        try:
            return x.item()
        except (TypeError, ValueError, RuntimeError):  # not a one-element scalar: keep it as it is
            return x
    return x


def write_private(path: str | Path, text: str) -> Path:
    """Write a file readable by its owner only (0600), atomically: a kill leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def append_private(path: str | Path, text: str) -> None:
    """Append to a file readable by its owner only (0600); one write call, so a row lands whole or not at all."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a killed process left unfinished (no newline), so the next row starts on its own line."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


@dataclass
class RunDir:
    """One run's folder: ``config.yaml``, ``metrics.jsonl``, ``run.log`` and whatever outputs the run writes.

    The folder is created 0700 and the files RunDir writes 0600: they hold prompts, replies and settings.
    ``run.log`` is appended to, with a header each time a process opens the run.
    """

    path: Path
    inherited_rows: int = 0  # metrics rows earlier processes left in metrics.jsonl when this one opened it
    rerun: bool = False  # the folder already held a run's metrics or log when it was opened
    # experiment trackers that mirror every metrics row (lyceum.train.trackers); metrics.jsonl stays the record
    mirrors: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, root: str | Path, name: str, config: Any = None, *, resume: bool = True) -> RunDir:
        path = Path(root) / name
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the run folder {path}: {e.strerror}") from e
        metrics = path / "metrics.jsonl"
        rerun = metrics.exists() or (path / "run.log").exists()
        if config is not None:
            write_private(path / "config.yaml", yaml.safe_dump(jsonable(config), sort_keys=False))
        if not resume and metrics.exists():
            metrics.unlink()
        _drop_torn_tail(metrics)
        inherited = metrics.read_bytes().count(b"\n") if metrics.exists() else 0
        run = cls(path=path, inherited_rows=inherited, rerun=rerun)
        argv = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
        run._append_log(f"==== process {os.getpid()} opened this run ({argv}) ====")
        return run

    @classmethod
    def open(cls, out: str | Path, config: Any = None, *, fresh: bool = False) -> RunDir:
        """The run folder a command's ``--out`` names; ``fresh`` starts its metrics over (a restart, not a resume).

        The one way commands open a run folder."""
        out = Path(out)
        if not out.name or out.name in (".", ".."):
            raise UserError(f"--out must name a run folder, e.g. runs/my-run (got {str(out)!r})")
        return cls.create(out.parent, out.name, config, resume=not fresh)

    def _append_log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        append_private(self.path / "run.log", f"{stamp} {line}\n")

    def log(self, message: str) -> None:
        self._append_log(f"INFO {message}")

    def log_metrics(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **jsonable(record)}
        append_private(self.path / "metrics.jsonl", json.dumps(record) + "\n")
        for mirror in self.mirrors:
            mirror.log(record)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl") if (self.path / "metrics.jsonl").exists() else []

    def continue_from(self, step: int | None, *, checkpoint: str | Path | None = None) -> None:
        """Make ``metrics.jsonl`` agree with where training continues, and say so on screen and in run.log.

        ``step``: resuming from a checkpoint at that step: the earlier processes' rows after it are dropped
        (those steps run again, so none is duplicated or lost). ``None``: no checkpoint, starting over: all their
        rows are dropped. Rows this process wrote since it opened the run (e.g. a teacher evaluation) stay."""
        path = self.path / "metrics.jsonl"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = [line + "\n" for line in text.split("\n")[:-1]]  # rows end in "\n" (a torn tail was cut at open)
        earlier, ours = lines[: self.inherited_rows], lines[self.inherited_rows:]
        kept = [line for line in earlier if step is not None and _row_step(line) is not None
                and _row_step(line) <= step]
        if len(kept) != len(earlier):
            write_private(path, "".join(kept + ours))
            self.inherited_rows = len(kept)
        dropped = len(earlier) - len(kept)
        if step is not None:
            message = f"resuming at step {step} from {checkpoint or 'the checkpoint'}"
        elif self.rerun:
            message = "starting over" + (f" ({dropped} metrics rows of the earlier run dropped)" if dropped else "")
        else:
            return
        self.log(f"resumed from {checkpoint} at step {step}" if step is not None else message)
        print(f"{self.path}: {message}", file=sys.stderr, flush=True)

    def write_json(self, name: str, obj: Any) -> Path:
        return write_private(self.path / name, json.dumps(jsonable(obj), indent=2, ensure_ascii=False))

    def write_text(self, name: str, text: str) -> Path:
        return write_private(self.path / name, text)


def _row_step(line: str) -> int | None:
    """The step of one metrics row (0 when it has none); None for a line that is not a JSON object."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return int(row.get("step", 0) or 0) if isinstance(row, dict) else None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line is a user error naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{i} is not valid JSON ({e.msg})") from e
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL, 0600 and atomically (a kill leaves the old file or the new one)."""
    write_private(path, "".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n" for r in rows))


def load_config(path: str | Path) -> dict[str, Any]:
    """Load a YAML or JSON config file into a dict, with a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML/JSON: {str(e).splitlines()[0]}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of settings, not a {type(data).__name__}")
    return data


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config dataclass from a dict, refusing unknown keys with the list of valid ones."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; valid settings are: {', '.join(sorted(names))}")
    return cls(**data)


def is_interactive() -> bool:
    return sys.stderr.isatty()


def rich_progress():
    """The one look of lyceum's progress bars: description, bar, done/total, elapsed, remaining, live info."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """A progress bar on a terminal; silent when output is not a terminal (CI, pipes)."""
    if not is_interactive():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with rich_progress() as bar:
        task = bar.add_task(desc, total=total, info="")
        for x in items:
            yield x
            bar.advance(task)


class ProgressBar:
    """A manual progress bar for loops that report live numbers (e.g. loss) as they go; quiet off a terminal."""

    def __init__(self, total: int, desc: str = "", completed: int = 0):
        self._bar = None
        if is_interactive():
            self._bar = rich_progress()
            self._task = self._bar.add_task(desc, total=total, completed=completed, info="")

    def __enter__(self) -> Self:
        if self._bar:
            self._bar.start()
        return self

    def update(self, advance: int = 1, info: str = "") -> None:
        if self._bar:
            self._bar.update(self._task, advance=advance, info=info)

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()
