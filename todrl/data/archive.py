"""JSON files read from folders or from the zip archives corpora ship as.

Every failure (a damaged archive, a truncated member, broken JSON) becomes a
``DataError`` naming the file, as ``archive.zip/member.json`` for a member.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(path, f"not a readable zip archive ({error})") from None


def read_member_json(path: Path, archive: zipfile.ZipFile, member: str) -> tuple[str, Any]:
    """(where, parsed content) of one archive member."""
    where = f"{path}/{member}"
    try:
        content = archive.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:  # truncated or damaged member
        raise DataError(where, f"cannot be read from the archive ({error})") from None
    return where, parse_json(where, content)


def read_file_json(path: Path) -> tuple[str, Any]:
    """(where, parsed content) of a plain file."""
    return str(path), parse_json(str(path), path.read_bytes())


def parse_json(where: str, content: bytes) -> Any:
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(where, f"not valid JSON, truncated or corrupt? ({error})") from None
