"""Where and with which code a result was made: the CPU's model and flags, the git commit."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


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


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> str | None:
    """The git commit of the checkout this package runs from, ``+dirty`` when tracked files
    have uncommitted changes; None outside a git checkout (an installed wheel, a copied tree)."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")
