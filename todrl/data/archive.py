"""JSON files read from folders or from the zip archives corpora ship as.

Every failure (a damaged archive, a truncated member, broken JSON) becomes a
``DataError`` naming the file, as ``archive.zip/member.json`` for a member.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError


def open_zip(file: Path | io.BytesIO, where: str | Path | None = None) -> zipfile.ZipFile:
    """An archive on disk, or one held in memory (an archive inside an archive) named by `where`."""
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(where or file, f"not a readable zip archive ({error})") from None


def read_member(archive: zipfile.ZipFile, member: str, where: str) -> bytes:
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:  # truncated or damaged member
        raise DataError(where, f"cannot be read from the archive ({error})") from None


def read_member_json(path: Path, archive: zipfile.ZipFile, member: str) -> tuple[str, Any]:
    """(where, parsed content) of one archive member."""
    where = f"{path}/{member}"
    return where, parse_json(where, read_member(archive, member, where))


def read_file_json(path: Path) -> tuple[str, Any]:
    """(where, parsed content) of a plain file."""
    return str(path), parse_json(str(path), path.read_bytes())


def parse_json(where: str, content: bytes) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError as error:
        raise DataError(
            where, f"not valid JSON at line {error.lineno}, column {error.colno} (character {error.pos}): {error.msg}"
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(where, f"not UTF-8 text ({error})") from None
