"""Where and with which code a result was made: the CPU's model and flags, the git commit,
the uncommitted changes to the training code (``src/``) and a hash of that code; and the rule
by which ``publish`` refuses a run whose commit does not say what code trained it."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/rnnbench/, every stage
# The code a run's numbers depend on (its settings are in its command and config): the
# package. Changes elsewhere in the checkout (README, tests, workflow) leave a run reproducible.
CODE_DIR = PACKAGE_DIR.parent  # src/


def cpu_model() -> str:
    """The CPU's 'model name' from /proc/cpuinfo (else platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The CPU flags that decide how fast bf16 products run (and fp32 ones, for comparison).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")


def cpu_flags() -> str:
    """Which of :data:`BF16_FLAGS` /proc/cpuinfo lists, space-separated ('' if unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in BF16_FLAGS if f in have)
    except OSError:
        pass
    return ""


def _git(*args: str, where: Path | None = None, strip: bool = True) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(where or PACKAGE_DIR), *args],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


def code_version() -> str | None:
    """The git commit of the checkout this package runs from, ``+dirty`` when tracked files
    have uncommitted changes; None outside a git checkout (an installed wheel, a copied tree)."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def code_changes() -> list[str] | None:
    """Paths (from the repository root) under ``src/`` with uncommitted changes: modified,
    staged, deleted or untracked (not ignored); None outside a git checkout."""
    status = _git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".",
                  where=CODE_DIR, strip=False)
    if status is None:
        return None
    # NUL-separated "XY path" entries (paths from the root), a rename's old path after it
    paths, entries = [], iter(status.split("\0"))
    for entry in entries:
        if entry:
            paths.append(entry[3:])
            if entry[0] in "RC":
                next(entries, None)  # the path it was renamed or copied from
    return sorted(paths)


def code_sha256() -> str:
    """SHA-256 over the package's Python files (relative path and bytes, in path order): the
    code that ran, checkable against a commit even when the tree was dirty."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def unpublishable(meta: dict) -> str | None:
    """Why a run's train.json does not name the code that trained it, or None: no commit
    recorded, or a dirty tree with changes to ``src/`` (or unrecorded changes: runs trained
    before ``code_changes`` was recorded say only ``+dirty``)."""
    version = meta.get("code_version")
    if not version:
        return "no git commit recorded (not trained from a git checkout)"
    if not version.endswith("+dirty"):
        return None
    changes = meta.get("code_changes")
    if changes is None:
        return (f"trained from {version[:7]} with uncommitted changes, to files it did not "
                "record")
    if changes:
        shown = ", ".join(changes[:4]) + (f" and {len(changes) - 4} more" if len(changes) > 4
                                          else "")
        return f"trained from {version[:7]} with uncommitted changes to {shown}"
    return None  # dirty outside src/: the commit's training code is the code that ran
