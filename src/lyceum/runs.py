"""Run folders: every run writes its resolved config, metrics (JSONL), logs and outputs to one place.

    run = RunDir.create("runs", "demo", config)
    run.log_metrics({"step": 1, "loss": 0.3})
    for x in progress(items, desc="scoring"): ...
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import yaml

from lyceum.errors import UserError

T = TypeVar("T")


def _jsonable(x: Any) -> Any:
    """Make a config value serialisable (paths, dataclasses, tuples)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        try:
            return x.item()
        except Exception:
            pass
    return x


@dataclass
class RunDir:
    """One run's folder: ``config.yaml``, ``metrics.jsonl``, ``run.log`` and whatever outputs the run writes."""

    path: Path
    logger: logging.Logger = field(repr=False)

    @classmethod
    def create(cls, root: str | Path, name: str, config: Any = None, *, resume: bool = True) -> "RunDir":
        path = Path(root) / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the run folder {path}: {e.strerror}") from e
        if config is not None:
            (path / "config.yaml").write_text(yaml.safe_dump(_jsonable(config), sort_keys=False))
        if not resume and (path / "metrics.jsonl").exists():
            (path / "metrics.jsonl").unlink()
        logger = logging.getLogger(f"lyceum.run.{path.resolve()}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not logger.handlers:
            handler = logging.FileHandler(path / "run.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
        return cls(path=path, logger=logger)

    @classmethod
    def open(cls, out: str | Path, config: Any = None, *, fresh: bool = False) -> "RunDir":
        """The run folder a command's ``--out`` names; ``fresh`` starts its metrics over (a restart, not a resume).

        The one way commands open a run folder."""
        out = Path(out)
        if not out.name or out.name in (".", ".."):
            raise UserError(f"--out must name a run folder, e.g. runs/my-run (got {str(out)!r})")
        return cls.create(out.parent, out.name, config, resume=not fresh)

    def log(self, message: str) -> None:
        self.logger.info(message)

    def log_metrics(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **_jsonable(record)}
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl") if (self.path / "metrics.jsonl").exists() else []

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        p.write_text(json.dumps(_jsonable(obj), indent=2, ensure_ascii=False))
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path / name
        p.write_text(text)
        return p


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
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(_jsonable(r), ensure_ascii=False) + "\n")


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


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """A progress bar on a terminal; silent when output is not a terminal (CI, pipes)."""
    if not is_interactive():
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(desc, total=total, info="")
        for x in items:
            yield x
            bar.advance(task)


class ProgressBar:
    """A manual progress bar for loops that report live numbers (e.g. loss) as they go; quiet off a terminal."""

    def __init__(self, total: int, desc: str = "", completed: int = 0):
        self._bar = None
        if is_interactive():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self._task = self._bar.add_task(desc, total=total, completed=completed, info="")

    def __enter__(self) -> "ProgressBar":
        if self._bar:
            self._bar.start()
        return self

    def update(self, advance: int = 1, info: str = "") -> None:
        if self._bar:
            self._bar.update(self._task, advance=advance, info=info)

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()
