"""MedMNIST files on disk: where to look, official names, MD5 checks (once per file) and downloads; atomic writes.

URLs and MD5s come from `medmnist.INFO`; nothing here re-types them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

import benchmark
from benchmark.errors import MedAugBenchError

DATA_DIR_ENV = "MEDAUGBENCH_DATA_DIR"
CACHE_DIR_ENV = "MEDAUGBENCH_CACHE_DIR"
SOURCE_SIZES = (28, 64, 128, 224)
DOWNLOAD_TIMEOUT_S = 10
DIGEST_NAMES = {"md5": "MD5", "sha256": "SHA-256"}


def cache_dir() -> Path:
    """Folder for downloads and bookkeeping: `MEDAUGBENCH_CACHE_DIR`, else ~/.cache/medaugbench; something there that
    is not a folder is an error naming it."""
    folder = Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "medaugbench")
    if folder.exists() and not folder.is_dir():
        raise MedAugBenchError(
            f"the cache folder {folder} is a file, not a folder; point {CACHE_DIR_ENV} at a folder (or move the file)"
        )
    return folder


def user_data_dir(option: Path | str | None) -> Path | None:
    """The user's local folder: `--data-dir` wins over `MEDAUGBENCH_DATA_DIR`; must exist when given."""
    value = option if option not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if option not in (None, "") else DATA_DIR_ENV
        raise MedAugBenchError(
            f"data folder {path} (from {origin}) does not exist; create it or point {origin} "
            "at the folder of .npz files"
        )
    return path


def file_name(flag: str, size: int) -> str:
    """Official MedMNIST file name: `{flag}.npz` at 28 px, `{flag}_{size}.npz` for MedMNIST+ sizes."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _info_key(size: int, key: str) -> str:
    if size not in SOURCE_SIZES:
        raise MedAugBenchError(
            f"MedMNIST has no {size}-pixel files; choose --size from {', '.join(map(str, SOURCE_SIZES))}"
        )
    return key if size == 28 else f"{key}_{size}"


@functools.cache
def medmnist_info() -> dict[str, dict]:
    """`medmnist.INFO`, read from the package's data-only `info.py` without running `medmnist/__init__.py`, which
    imports torch: listing datasets and checking a grid need only these facts."""
    package = importlib.util.find_spec("medmnist")
    if package is None or not package.submodule_search_locations:
        raise MedAugBenchError("the medmnist package is not installed; reinstall medaugbench (`pip install -e .`)")
    info_py = Path(package.submodule_search_locations[0]) / "info.py"
    spec = importlib.util.spec_from_file_location("medmnist_info", info_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.INFO


def _info(flag: str) -> dict:
    return medmnist_info()[flag]


def expected_md5(flag: str, size: int) -> str:
    return _info(flag)[_info_key(size, "MD5")]


def official_url(flag: str, size: int) -> str:
    return _info(flag)[_info_key(size, "url")]


def clone_data_dir() -> Path | None:
    """`../shared/data/medmnist` beside a source checkout (the developers' layout), when it exists: the default
    folder of a run from a clone, so no variable has to be set."""
    folder = Path(benchmark.__file__).resolve().parent.parent.parent / "shared" / "data" / "medmnist"
    return folder if folder.is_dir() else None


def search_dirs(data_dir: Path | None) -> list[Path]:
    """Where files are looked for, in order: the user's folder (else the clone's shared folder), then the download
    cache, where a missing file is downloaded."""
    return [d for d in (data_dir or clone_data_dir(), cache_dir() / "medmnist") if d is not None]


def locate(flag: str, size: int, data_dir: Path | None) -> Path | None:
    for folder in search_dirs(data_dir):
        candidate = folder / file_name(flag, size)
        if candidate.is_file():
            return candidate
    return None


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def _verified_ledger() -> Path:
    return cache_dir() / "verified.json"


def _read_ledger() -> dict[str, str]:
    try:
        return json.loads(_verified_ledger().read_text())
    except (OSError, ValueError):
        return {}


def _ledger_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


SHARED_FILE = 0o644
SHARED_FOLDER = 0o755
"""Modes of what the harness writes for others to read: records, checkpoints and their folders alike (a temp file
or folder is created 0600/0700 and would keep those modes when renamed into place)."""


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "w", **open_kwargs: object) -> Iterator[IO]:
    """A file handle on a temp file beside `path` that is renamed into place when the block ends, or deleted if it
    raises: readers (and a run killed mid-write) see the old file or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        mode, dir=path.parent, prefix=f"{path.name}.", suffix=".tmp", delete=False, **open_kwargs
    )
    try:
        with handle:
            yield handle
        os.chmod(handle.name, SHARED_FILE)  # results are for sharing; the temp file's 0600 would hide them
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON atomically (see `atomic_output`)."""
    with atomic_output(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (see `atomic_output`), newlines as given; returns `path`."""
    with atomic_output(path, encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def verify(path: Path, md5: str) -> None:
    """Check the file's MD5 against the official value; a file unchanged since its last check is not re-read."""
    ledger = _read_ledger()
    key = _ledger_key(path)
    if ledger.get(key) == md5:
        return
    actual = md5sum(path)
    if actual != md5:
        raise MedAugBenchError(
            f"{path} has MD5 {actual}, expected {md5} (medmnist.INFO): "
            "the file is corrupt, truncated or not the official one; "
            "delete it and run `medaugbench datasets prepare`, or replace it with the official file"
        )
    ledger[key] = md5
    try:
        write_json_atomic(_verified_ledger(), ledger)
    except OSError:
        pass  # a read-only cache only costs a re-check next time


def fetch(url: str, target: Path, algorithm: str, expected: str, offline_hint: str, manual_hint: str) -> Path:
    """Download `url` to `target` with a progress bar, via a `.part` file that takes the final name only if its
    `algorithm` hex digest starts with `expected`; nothing is left behind on failure. Fails fast offline."""
    timeout = float(os.environ.get("MEDAUGBENCH_DOWNLOAD_TIMEOUT", DOWNLOAD_TIMEOUT_S))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise MedAugBenchError(
            f"cannot download {target.name} from {url} ({reason}); offline, {offline_hint}"
        ) from None
    partial = target.with_name(target.name + ".part")
    digest = hashlib.new(algorithm)
    try:
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            response,
            open(partial, "wb") as out,
            tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                digest.update(block)
                bar.update(len(block))
        if not digest.hexdigest().startswith(expected):
            raise MedAugBenchError(
                f"the download from {url} has {DIGEST_NAMES.get(algorithm, algorithm)} {digest.hexdigest()}, "
                f"expected {expected}; nothing was "
                f"kept: try again, or {manual_hint}"
            )
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def download(flag: str, size: int, folder: Path) -> Path:
    """Download the official MedMNIST file into `folder`, MD5-checked against `medmnist.INFO`."""
    return fetch(
        official_url(flag, size),
        folder / file_name(flag, size),
        "md5",
        expected_md5(flag, size),
        offline_hint=(
            f"copy the official file into a folder and pass --data-dir FOLDER or set {DATA_DIR_ENV}=FOLDER "
            f"(or put it in {folder})"
        ),
        manual_hint="fetch the file yourself and pass --data-dir",
    )


def ensure_file(flag: str, size: int, data_dir: Path | str | None, allow_download: bool) -> Path:
    """Path of a verified official file: found locally (used in place) or, if allowed, downloaded."""
    md5 = expected_md5(flag, size)
    folder = user_data_dir(data_dir)
    found = locate(flag, size, folder)
    if found is None:
        if not allow_download:
            looked = ", ".join(str(d) for d in search_dirs(folder))
            raise MedAugBenchError(
                f"{file_name(flag, size)} not found (looked in {looked}); run `medaugbench datasets prepare {flag}"
                f"{'' if size == 28 else f' --size {size}'}` to download it, "
                "or put the official file in a folder and pass "
                f"--data-dir FOLDER or set {DATA_DIR_ENV}"
            )
        found = download(flag, size, folder or cache_dir() / "medmnist")
    verify(found, md5)
    return found
