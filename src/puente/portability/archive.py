"""The archive's container: a zip holding manifest.json, one JSON-lines file per kind
(`data/<table>.jsonl`, deflated) and the media files (`media/<sha256>`, stored).

The manifest is written last, with each file's row count and SHA-256, so an archive cut
short has no manifest (nor a zip directory) and one with a changed byte fails its
checksum: the importer checks all of it before it writes anything."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from puente.errors import InvalidInput

FORMAT = "puente-workspace"
# Raised when a change makes older importers misread an archive; an importer refuses
# archives newer than the format it knows.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20


def data_name(table: str) -> str:
    return f"data/{table}.jsonl"


def media_name(sha256: str) -> str:
    return f"media/{sha256}"


@dataclass
class FileEntry:
    rows: int = 0
    sha256: str = ""
    bytes: int = 0


@dataclass
class Manifest:
    puente_version: str
    source_engine: str
    exported_at: str
    workspace: dict[str, Any]
    files: dict[str, FileEntry] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "puente_version": self.puente_version,
            "source_engine": self.source_engine,
            "exported_at": self.exported_at,
            "workspace": self.workspace,
            "files": {
                name: {"rows": f.rows, "sha256": f.sha256, "bytes": f.bytes}
                for name, f in sorted(self.files.items())
            },
        }

    def rows(self, table: str) -> int:
        entry = self.files.get(data_name(table))
        return entry.rows if entry else 0


class Refused(InvalidInput):
    """An archive the importer will not load, said before anything is written."""


class LinesWriter:
    """One JSON-lines member being written: counts lines and hashes bytes as they go."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.entry = FileEntry()
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._size = 0

    def write(self, line: str) -> None:
        data = line.encode() + b"\n"
        self._buffer.append(data)
        self._size += len(data)
        self.entry.rows += 1
        if self._size >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._hash.update(data)
            self.stream.write(data)
            self.entry.bytes += len(data)
            self._buffer, self._size = [], 0

    def close(self) -> FileEntry:
        self.flush()
        self.entry.sha256 = self._hash.hexdigest()
        return self.entry


def open_archive(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise Refused(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise Refused(
            f"{path} is not a complete Puente archive (truncated or damaged: {exc})"
        ) from None


def read_manifest(zf: zipfile.ZipFile) -> Manifest:
    try:
        raw = json.loads(zf.read(MANIFEST))
    except KeyError:
        raise Refused("the archive has no manifest: it is incomplete or not from Puente") from None
    except (ValueError, zipfile.BadZipFile) as exc:
        raise Refused(f"the archive's manifest cannot be read ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise Refused("this is not a Puente workspace archive")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise Refused(
            f"the archive is in format {version}, newer than this Puente reads "
            f"({FORMAT_VERSION}): upgrade Puente on this installation first"
        )
    files = {
        name: FileEntry(int(f["rows"]), str(f["sha256"]), int(f.get("bytes", 0)))
        for name, f in (raw.get("files") or {}).items()
    }
    return Manifest(
        puente_version=str(raw.get("puente_version", "")),
        source_engine=str(raw.get("source_engine", "")),
        exported_at=str(raw.get("exported_at", "")),
        workspace=dict(raw.get("workspace") or {}),
        files=files,
        format_version=version,
    )


def verify(zf: zipfile.ZipFile, manifest: Manifest, progress: Any = None) -> None:
    """Every file the manifest lists is there, whole: its SHA-256 and line count match."""
    present = set(zf.namelist())
    for name, entry in manifest.files.items():
        if name not in present:
            raise Refused(f"the archive is incomplete: {name} is missing")
        digest, lines = hashlib.sha256(), 0
        try:
            with zf.open(name) as member:
                for chunk in iter(lambda m=member: m.read(CHUNK), b""):  # type: ignore[misc]
                    digest.update(chunk)
                    if name.endswith(".jsonl"):
                        lines += chunk.count(b"\n")
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise Refused(f"the archive is damaged: {name} cannot be read ({exc})") from None
        if digest.hexdigest() != entry.sha256:
            raise Refused(f"the archive is damaged: {name} fails its checksum")
        if name.endswith(".jsonl") and lines != entry.rows:
            raise Refused(f"the archive is damaged: {name} has {lines} rows, not {entry.rows}")
        if progress is not None:
            progress(name)


def read_lines(zf: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    with zf.open(name) as member:
        for line in member:
            yield json.loads(line)
