"""Published data files: fetched when missing, resumed after a broken connection, verified by checksum.

A file is written as ``<name>.part`` and renamed only once its checksum matches, so a complete
name never holds a partial file. Offline, one line says which files to put where.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from src.errors import UserError
from src.run_log import log

CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """A published file: its name on disk, where to get it (mirrors in order) and its MD5 as published."""

    name: str
    urls: tuple[str, ...]
    md5: str


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_files(files: list[Remote], folder: Path, download: bool, what: str, attempts: int = 5, pause: float = 1.0) -> None:
    """Every file present in ``folder`` with its published checksum, fetching those that are missing."""
    missing = [remote for remote in files if not (folder / remote.name).is_file()]
    for remote in files:
        path = folder / remote.name
        if path.is_file() and (found := md5_of(path)) != remote.md5:
            raise UserError(
                f"data {what}: {path} has MD5 {found}, the published file has {remote.md5}: "
                "delete it (it will be downloaded again) or put the published file there"
            )
    if missing and not download:
        raise UserError(f"data {what}: missing in {folder}: {_listing(missing)}; put them there, or set data.download=true")
    for remote in missing:
        folder.mkdir(parents=True, exist_ok=True)
        fetch(remote, folder / remote.name, what, attempts, pause, missing)


def fetch(remote: Remote, path: Path, what: str, attempts: int, pause: float, missing: list[Remote]) -> None:
    part = path.with_name(path.name + ".part")
    reason = ""
    for attempt in range(attempts):
        url = remote.urls[attempt % len(remote.urls)]
        try:
            _download(url, part)
        except (OSError, http.client.HTTPException, ValueError) as error:  # URLError is an OSError
            reason = str(getattr(error, "reason", None) or error)
            if isinstance(error, urllib.error.HTTPError) and error.code == 416:  # asked past the end: start over
                part.unlink(missing_ok=True)
            log.warning(f"data {what}: downloading {url} failed ({reason}); attempt {attempt + 1} of {attempts}")
            time.sleep(pause * (attempt + 1))
            continue
        found = md5_of(part)
        if found == remote.md5:
            os.replace(part, path)
            return
        reason = f"MD5 {found}, published {remote.md5}"
        log.warning(f"data {what}: {url} arrived with {reason}; attempt {attempt + 1} of {attempts}")
        part.unlink()
    raise UserError(
        f"data {what}: could not download {remote.name} ({reason}); put {_listing(missing)} in {path.parent} "
        "(or set data.root to a folder that holds them)"
    )


def _download(url: str, part: Path) -> None:
    """Append the rest of ``url`` to ``part`` (a resumed request when part of it is there already)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        if have and response.status != 206:  # the server ignored the range: the whole file comes again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with part.open("ab" if have else "wb") as file, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[: -len(".part")], disable=None, leave=False
        ) as bar:
            while chunk := response.read(CHUNK):
                file.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise ValueError(f"the connection closed after {part.stat().st_size} of {total} bytes")


def _listing(files: list[Remote]) -> str:
    return ", ".join(f"{remote.name} ({remote.urls[0]})" for remote in files)
