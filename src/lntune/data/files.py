"""Read delimited files with errors that name the file, the line and the fix."""
from __future__ import annotations

import codecs
import csv
import ctypes
import io
import json
import os
import sys
from pathlib import Path
from typing import Callable

from lntune.errors import DataError

# A default for working inside this repository; users set --data-dir or LNTUNE_DATA_DIR.
_FALLBACK_DATA_DIRS = ("../shared/data",)

# Users' texts (whole documents) can exceed csv's 128 KiB default field limit. The C parser keeps
# the limit in a C long, which is 32 bits on Windows, so sys.maxsize is clipped to it.
csv.field_size_limit(min(sys.maxsize, 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1))

# Files people pick by mistake, named so the error says what the file is.
_MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF",
    b"PK\x03\x04": "a zip archive (an Excel .xlsx?)", b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Office file (an Excel .xls?)", b"SQLite format 3": "an SQLite database",
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def save_as_utf8(enc: str) -> str:
    return "save it as UTF-8"


def clip(value, width: int = 60) -> str:
    """repr(value) cut to `width` characters, so one odd cell (a 1 MB text) cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def spec_encoding_fix(task: str) -> Callable[[str], str]:
    """For a task spec ("local:..."): the fix for an undecodable file is the same spec with encoding=ENC."""
    kind, _, spec = task.partition(":")

    def fix(enc: str) -> str:
        parts = [p for p in spec.split(",") if not p.startswith("encoding=")]
        name = {"cp1252": "Windows/Latin-1", "latin-1": "Latin-1", "utf-16": "UTF-16", "utf-8": "UTF-8"}.get(enc, enc)
        return (f"if it was saved as {name} text, add encoding={enc} to the task spec "
                f"({kind}:{','.join(parts)},encoding={enc}), or save it as UTF-8")
    return fix


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """--data-dir, then $LNTUNE_DATA_DIR, then ../shared/data; None means use the hub."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("LNTUNE_DATA_DIR"):
        return Path(os.environ["LNTUNE_DATA_DIR"])
    for d in _FALLBACK_DATA_DIRS:
        if Path(d).is_dir():
            return Path(d)
    return None


def codec_for(encoding: str, where: str) -> str:
    """The codec to decode with; UTF-8 is read as utf-8-sig so a leading BOM (Excel, Notepad) is dropped."""
    try:
        name = codecs.lookup(encoding).name
        b"\xff".decode(name)  # rot13 and friends are codecs but not text encodings (LookupError)
    except UnicodeDecodeError:
        pass
    except LookupError:
        raise DataError(f"{where}: unknown encoding {encoding!r}; use e.g. utf-8, cp1252, latin-1 or utf-16") from None
    return "utf-8-sig" if name == "utf-8" else name


_NUL_KIND = "a binary file"


def _binary_kind(data: bytes) -> str | None:
    """What a non-text file is, from its first bytes; None if it may be text."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    return _NUL_KIND if b"\0" in data[:65536] else None


def _guess_encoding(data: bytes) -> str:
    # cp1252 (Windows Western) is what Excel writes and decodes most such files; latin-1 decodes any byte.
    for encoding in ("utf-8", "cp1252"):
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            pass
    return "latin-1"


def read_text(path: Path, encoding: str = "utf-8", fix: Callable[[str], str] = save_as_utf8) -> str:
    """The whole file as text. Unreadable, binary or undecodable files raise a DataError naming the file;
    `fix(encoding)` says how to read a file that is in another encoding (e.g. an encoding= key)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    codec = codec_for(encoding, str(path))
    if codec == "utf-8-sig" and data.startswith(_UTF16_BOMS):
        raise DataError(f"{path}: the file is UTF-16 text; {fix('utf-16')}")
    if not codec.startswith(("utf-16", "utf-32")) and (kind := _binary_kind(data)):
        where, why = str(path), kind
        if kind == _NUL_KIND:  # a text file with a stray NUL byte: say on which line, so it can be mended
            line = data.count(b"\n", 0, data.index(b"\0")) + 1
            where, why = f"{path}:{line}", f"{kind} (a NUL byte on this line)"
        raise DataError(f"{where}: this is {why}, not a text file; give the CSV/TSV/JSONL/CoNLL text file instead")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        what = "UTF-8" if codec == "utf-8-sig" else codec
        raise DataError(f"{path}:{line}: not {what} text (byte {data[e.start]:#04x}); {fix(_guess_encoding(data))}") \
            from None


def _csv_records(path: Path, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(first line, fields) per non-blank record; a quoted field may span lines."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    records, start = [], 1
    try:
        for fields in reader:
            if fields:
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}:{start}: {e}; check the quotes on this line") from None
    return records


def read_rows(
    path: Path, required: tuple[str, ...], delimiter: str = "\t", hint: str = "", *,
    header: bool = True, encoding: str = "utf-8", fix: Callable[[str], str] = save_as_utf8,
) -> list[tuple[int, dict]]:
    """(line number, row dict) for every data row. With header=False the columns are named by
    their 0-based index ("0", "1", ...) and every line is data."""
    records = _csv_records(path, read_text(path, encoding, fix), delimiter)
    if not records:
        raise DataError(f"{path}: the file is empty; {hint or 'restore it from the upstream release'}")
    if header:
        (_, names), records = records[0], records[1:]
        where = "header has"
    else:
        names, where = [str(i) for i in range(len(records[0][1]))], "the first row has"
    missing = [c for c in required if c not in names]
    if missing and header:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(header has {clip(names, 200)}); {hint or 'the file needs a header row naming them'}"
        )
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)}: the first row has {len(names)} fields "
                        f"(columns 0 to {len(names) - 1})")
    rows = []
    for line, fields in records:
        if len(fields) != len(names):
            quotes = " (a field holding a comma needs double quotes)" if delimiter == "," else ""
            raise DataError(f"{path}:{line}: {len(fields)} fields, {where} {len(names)}{quotes}; {hint}".rstrip("; "))
        rows.append((line, dict(zip(names, fields))))
    if not rows:
        raise DataError(f"{path}: no data rows after the header; {hint or 'the file is truncated'}")
    return rows


def read_jsonl(
    path: Path, required: tuple[str, ...], *, hint: str = "",
    encoding: str = "utf-8", fix: Callable[[str], str] = save_as_utf8,
) -> list[tuple[int, dict]]:
    """(line number, record) for every non-blank line, with errors naming the file and line."""
    rows = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines() breaks on
    for line, text in enumerate(read_text(path, encoding, fix).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError) as e:  # ValueError also covers over-long integers
            why = getattr(e, "msg", None) or str(e) or "nested too deeply"
            raise DataError(f"{path}:{line}: not valid JSON ({why}); each line must be one JSON object") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{line}: a JSON {_JSON_TYPES.get(type(rec), 'value')}, not an object; "
                            f"each line must be one JSON object with key(s) {', '.join(map(repr, required))}")
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{path}:{line}: missing key(s) {', '.join(repr(k) for k in missing)}")
        rows.append((line, rec))
    if not rows:
        raise DataError(f"{path}: the file is empty; {hint or 'restore it from the upstream release'}")
    return rows
