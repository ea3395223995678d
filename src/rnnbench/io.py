"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (or Snakemake) never sees a half-written output, and a killed writer leaves
only a ``.tmp`` file behind, never a truncated file at the real path; the next write of
that path removes it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# mkstemp creates 0600 files; outputs get the usual 0666 minus the umask (read once, here).
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


class DiskFullError(OSError):
    """A write failed because its file system is full; the message is one line naming the
    path. Entry points print it as it is: nothing at the real path was touched."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.ENOSPC, f"no space left on device: {path} (free some space "
                         "and rerun; nothing already written was lost)")
        self.path = str(path)

    def __str__(self) -> str:
        return self.strerror


def _disk_full(err: BaseException, folder: Path) -> bool:
    """True when ``err`` is (or, as torch.save's ``basic_ios::clear`` is, hides) ENOSPC."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free == 0
    except OSError:
        return False


def sigterm_exits() -> None:
    """Make SIGTERM (Snakemake cancelling a job, SLURM) raise SystemExit in the main thread,
    so that an atomic write in progress removes its temporary file instead of dying with it
    on disk. For entry points (``main``) without a handler of their own."""
    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def _temp_beside(target: Path) -> Path:
    """A new empty file with the usual permissions in ``target``'s folder, after removing
    the temporary files an earlier writer of ``target`` left when it was killed (SIGKILL
    runs no cleanup): each target has one writer at a time (one Snakemake job)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp's 8 random characters exactly: never another target's (`x.csv.gz` of `x.csv`)
    _unlink_all(target.parent.glob(f".{glob.escape(target.name)}.????????.tmp"))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(tmp)


def _unlink_all(paths: Iterable[Path]) -> None:
    """Remove the files that exist among ``paths``."""
    for path in paths:
        # Truncate first: a writer that failed may still hold the file open (torch.save's
        # does, from the traceback), and then unlinking alone frees no space for the log.
        with contextlib.suppress(OSError):
            os.truncate(path, 0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _cleanup(err: BaseException, target: Path, temps: Iterable[Path]) -> None:
    """Remove ``temps`` and raise ``err``, as DiskFullError naming ``target`` if it is one."""
    # Ask before unlinking: removing the temporary files frees the space that shows it.
    full = not isinstance(err, DiskFullError) and _disk_full(err, target.parent)
    _unlink_all(temps)  # also frees the space the log needs to say so
    if full:
        raise DiskFullError(target) from err
    raise err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    target = Path(path)
    tmp = _temp_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as err:
        _cleanup(err, target, [tmp])


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside ``path``; if the block succeeds it becomes ``path`` (an
    older ``path`` is moved aside first, then deleted), else it is deleted. A reader never
    sees a folder with some files of the new version and not others; a kill leaves at most a
    hidden ``.{name}.tmp-*`` or ``.{name}.old-*`` beside it, which the next call replaces."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    for left in target.parent.glob(f".{glob.escape(target.name)}.*-*"):  # a killed call's
        shutil.rmtree(left, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_all_atomic(writers: dict[Path, Callable[[Path], Any]]) -> None:
    """Write several files so that either all of them reach their paths or none does."""
    staged: dict[Path, Path] = {}
    for target, writer in writers.items():
        try:
            staged[target] = _temp_beside(target)
            writer(staged[target])
        except BaseException as err:
            _cleanup(err, target, staged.values())
    # Every file is complete on disk; renames need no space.
    for target, tmp in staged.items():
        os.replace(tmp, target)


def write_csv(table: Any, path: str | os.PathLike) -> None:
    """Write a pandas table atomically, without its index."""
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def finite_or_null(data: Any) -> Any:
    """``data`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(v) for v in data]
    return data


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically; NaN and infinities become null.

    ``json.dumps`` would write them as ``NaN``/``Infinity``, which is not JSON (a strict
    reader refuses the file); a value that is not a number is recorded as null, and the
    writer says why in a status field where that matters (eval.json's ``diverged_split``).
    """
    text = json.dumps(finite_or_null(data), indent=2, sort_keys=False, allow_nan=False)
    write_text(path, text + "\n")


class BadJson(SystemExit):
    """A JSON file that cannot be parsed (truncated, damaged); the message is one paragraph
    naming the file and the fix. A SystemExit, so an entry point stops with just that."""


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; BadJson naming it if it is not valid JSON."""
    path = Path(path)
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadJson(
            f"{path} is not valid JSON ({getattr(err, 'msg', err)} at line "
            f"{getattr(err, 'lineno', '?')}, column {getattr(err, 'colno', '?')} of its "
            f"{len(text)} characters): the file is truncated or damaged. If it is committed "
            f"(results/reference/), restore it with `git checkout -- {path}`; if a run wrote "
            "it, delete it and rerun the workflow to write it again.") from None


def first_bad_json(paths: Iterable[str | os.PathLike]) -> str | None:
    """The paragraph of the first of ``paths`` (those that exist) that is not valid JSON."""
    for path in paths:
        if Path(path).exists():
            try:
                read_json(path)
            except BadJson as err:
                return str(err)
    return None
