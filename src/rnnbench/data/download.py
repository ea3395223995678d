"""Fetch one corpus file, verify its SHA-256, and only then put it at its output path.

A network URL (``http(s)://``, ``ftp://``) is tried after the local mirror (a folder or a
``file://`` URL; config key ``mirror``, passed in ``$RNNBENCH_MIRROR``), which holds the same
file under the same base name. A local file (a plain path or a ``file://`` URL) is copied as it
is: the mirror is never consulted for it, since a file of the same base name there is another
file (a 500-line ``ptb.valid.txt`` of one's own is not PTB's). Usage::

    python -m rnnbench.data.download --url URL --sha256 HEX --mirror DIR \
        --out results/data/ptb/train.txt
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rnnbench.io import DiskFullError, atomic_path

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A corpus file could not be fetched or failed verification."""


def to_url(location: str) -> str:
    """A URL for ``location``: URLs pass through, plain paths become ``file://`` URLs (made
    absolute, symbolic links kept: resolving one that loops would raise)."""
    if urllib.parse.urlparse(location).scheme in {"http", "https", "ftp", "file"}:
        return location
    return Path(os.path.abspath(Path(location).expanduser())).as_uri()


def mirror_url(mirror: str, filename: str) -> str:
    """URL of ``filename`` inside the mirror folder."""
    base = to_url(mirror)
    return base.rstrip("/") + "/" + urllib.parse.quote(filename)


def fetch(url: str, dest: Path, timeout: float = 60.0) -> str:
    """Copy ``url`` to ``dest`` and return the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as src, dest.open("wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_downloaded(files: dict[str, dict], folder: Path) -> None:
    """Raise DownloadError when a file already in ``folder`` (as ``{split}.txt``) does not
    match the config's ``sha256`` for it; files not there yet are checked when fetched."""
    for split, spec in files.items():
        path, expected = folder / f"{split}.txt", (spec.get("sha256") or "").lower()
        if not expected or not path.exists():
            continue
        got = sha256_of(path)
        if got != expected:
            raise DownloadError(
                f"the corpus file {path} has SHA-256 {got}, but corpus.files.{split}.sha256 in "
                f"the config is {expected}. If the config's checksum is wrong, fix it; if the "
                f"file is not the expected one, delete {path} and rerun to fetch it again "
                "(verified against the checksum). Nothing was run."
            )


def local_path(url: str) -> Path | None:
    """The file behind a ``file://`` URL, or None for a network URL."""
    parts = urllib.parse.urlparse(url)
    return Path(urllib.parse.unquote(parts.path)) if parts.scheme == "file" else None


def symlink_loop(path: Path) -> bool:
    """True when ``path`` (or a folder above it) is a symbolic link that loops."""
    try:
        path.stat()
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def download(url: str, out: Path, sha256: str | None = None, mirror: str | None = None) -> str:
    """Fetch ``url`` (the mirror first) to ``out`` atomically and return the source used."""
    try:
        filename = urllib.parse.unquote(Path(urllib.parse.urlparse(to_url(url)).path).name)
    except ValueError as err:  # urlparse refuses a few malformed URLs outright
        raise DownloadError(f"could not download {url!r}: it is not a valid URL ({err}). Fix "
                            "the url in the config's `corpus.files` section.") from None
    local = local_path(to_url(url)) is not None  # a file of one's own: never the mirror's
    sources = ([mirror_url(mirror, filename)] if mirror and not local else []) + [to_url(url)]
    failures = []
    for source in sources:
        try:
            with atomic_path(out) as tmp:
                got = fetch(source, tmp)
                if sha256 and got != sha256.lower():
                    raise DownloadError(
                        f"checksum mismatch for {source}: SHA-256 is {got}, the config expects "
                        f"{sha256}. The file is damaged or is not the expected corpus file; "
                        f"nothing was written to {out}. Replace the file at its source, or fix "
                        "the `sha256` value in the config's corpus section if the corpus "
                        "really changed."
                    )
        except DiskFullError:
            raise  # another source would not help
        # ValueError: http.client.InvalidURL (a space or quote in the URL) and other bad URLs.
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            log.warning("could not fetch %s: %s", source, reason)
            failures.append(f"{source} ({reason})")
            continue
        log.info("fetched %s -> %s (sha256 %s)", source, out, "verified" if sha256 else "unchecked")
        return source
    raise DownloadError(failure_message(url, filename, failures))


def failure_message(url: str, filename: str, failures: list[str]) -> str:
    """The paragraph for a file no source could give, with the fix that fits the URL."""
    tried = "; ".join(failures)
    path = local_path(to_url(url))
    if path is not None and symlink_loop(path):
        return (
            f"could not read {filename}: the corpus file {path} is a symbolic link that loops "
            f"(it points, directly or through other links, back to itself; the config's url "
            f"is {url!r}). See where it points with `ls -l {path}`, then point the link at "
            "the real file, or give the real file's path in the config's `corpus.files` "
            "section."
        )
    if path is not None and not path.exists():
        return (
            f"could not download {filename}: the corpus file {path} does not exist (the "
            f"config's url is {url!r}; tried {tried}). A relative path is resolved against "
            "Snakemake's working directory (-d/--directory, by default the folder where "
            "snakemake runs), not against the config file: give the file's absolute path, or "
            "a path relative to that folder, in the config's `corpus.files` section."
        )
    return (
        f"could not download {filename}: tried {tried}. If this machine is "
        "offline, point the config key `mirror` at a folder (or file:// URL) that holds "
        f"{filename}, for example `snakemake --config mirror=/path/to/ptb ...`; otherwise "
        f"check the corpus URL {url!r} in the config's `corpus.files` section."
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="URL or path of the file")
    parser.add_argument("--out", required=True, type=Path, help="output path")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 (hex)")
    parser.add_argument("--mirror", default=os.environ.get("RNNBENCH_MIRROR"),
                        help="local folder or file:// URL tried first (default: $RNNBENCH_MIRROR,"
                        " which the Snakefile sets from the config key `mirror`)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        download(args.url, args.out, args.sha256, args.mirror or None)
    except (DownloadError, DiskFullError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

