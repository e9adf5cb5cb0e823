"""A batch file (CSV or JSONL, one job a row) read into job requests, and its results file.

Each row's Idempotency-Key comes from its content (and, for identical rows, which
one it is), so running the same file again sends nothing twice: a row already done
is skipped, and a row sent before whose answer never came back is answered by the
server with the job it already has. A row without a seed gets one drawn from its
key, the same every run, so its request (and its key) never changes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.parameters import SEED_MAX

# Column names → the API's fields; any of these may head a column.
COLUMNS = {
    "prompt": "prompt",
    "preset": "preset",
    "model": "model",
    "image_size": "image_size",
    "size": "image_size",
    "customwidth": "customWidth",
    "width": "customWidth",
    "customheight": "customHeight",
    "height": "customHeight",
    "num_images": "num_images",
    "images": "num_images",
    "seed": "seed",
}
INTEGER_FIELDS = frozenset({"customWidth", "customHeight", "num_images", "seed"})
CUSTOM_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×]\s*(\d{1,5})\s*$", re.IGNORECASE)
RESULT_COLUMNS = ("row", "job_id", "status", "files", "seed", "cost", "error", "key")


class BatchFileError(ValueError):
    """The file cannot be read as a batch; the message names the row and column."""


@dataclass
class BatchRow:
    number: int  # from 1, as a person counts the file's rows
    body: dict[str, Any]
    key: str


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV or JSONL file, as {API field: value}; empty cells left out."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BatchFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BatchFileError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        raw_rows = _jsonl_rows(path, text)
    else:
        raw_rows = _csv_rows(path, text)
    rows = [_row(path, number, raw) for number, raw in enumerate(raw_rows, start=1)]
    if not rows:
        raise BatchFileError(f"{path}: no rows")
    return rows


def _jsonl_rows(path: Path, text: str) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchFileError(f"{path}, line {line_number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BatchFileError(f"{path}, line {line_number}: each line must be a JSON object")
        rows.append(row)
    return rows


def _csv_rows(path: Path, text: str) -> list[Mapping[str, Any]]:
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    if not reader.fieldnames:
        raise BatchFileError(f"{path}: no header row (prompt, size, seed, ...)")
    return [row for row in reader if any((value or "").strip() for value in row.values())]


def _row(path: Path, number: int, raw: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for column, value in raw.items():
        if column is None:
            raise BatchFileError(f"{path}, row {number}: more cells than the header has columns")
        name = COLUMNS.get(column.strip().lower().replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(set(COLUMNS)))
            raise BatchFileError(f"{path}: column {column!r} is not a parameter; one of: {known}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        body[name] = _value(path, number, name, value)
    size = body.get("image_size")
    if isinstance(size, str) and (custom := CUSTOM_SIZE.match(size)):
        body["image_size"] = "custom"
        body["customWidth"], body["customHeight"] = int(custom.group(1)), int(custom.group(2))
    return body


def _value(path: Path, number: int, name: str, value: Any) -> Any:
    if name not in INTEGER_FIELDS or isinstance(value, int):
        return value.strip() if isinstance(value, str) and name != "prompt" else value
    text = str(value).strip()
    if not re.fullmatch(r"-?\d{1,12}", text):
        raise BatchFileError(f"{path}, row {number}: {name} {text!r} is not a whole number")
    return int(text)


def keyed_rows(bodies: Iterable[dict[str, Any]]) -> list[BatchRow]:
    """Each row with its key; a row without a seed gets the seed its key draws."""
    seen: Counter[str] = Counter()
    rows = []
    for number, body in enumerate(bodies, start=1):
        content = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(content.encode()).hexdigest()[:40]
        key = f"batch:{digest}:{seen[digest]}"
        seen[digest] += 1
        if "seed" not in body:
            drawn = hashlib.sha256(key.encode()).digest()
            body = {**body, "seed": int.from_bytes(drawn[:8], "big") % (SEED_MAX + 1)}
        rows.append(BatchRow(number, body, key))
    return rows


@dataclass
class Results:
    """The results file: one line per row tried, rewritten whole after each row (written
    aside and renamed, so a crash leaves the previous version, never half a file)."""

    path: Path
    rows: dict[int, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Results:
        results = cls(path)
        if path.exists():
            with path.open(newline="", encoding="utf-8") as file:
                for line in csv.DictReader(file):
                    if (line.get("row") or "").isdecimal():
                        results.rows[int(line["row"])] = {
                            name: line.get(name) or "" for name in RESULT_COLUMNS
                        }
        return results

    def done(self, row: BatchRow, folder: Path) -> bool:
        """Whether this row (the same request) completed and its files are all there."""
        line = self.rows.get(row.number)
        if line is None or line["key"] != row.key or line["status"] != "completed":
            return False
        files = [name for name in line["files"].split(";") if name]
        return bool(files) and all((folder / name).is_file() for name in files)

    def failed_job(self, row: BatchRow) -> str | None:
        """The job a row's earlier run failed with (not charged), if it did."""
        line = self.rows.get(row.number)
        if line is None or line["key"] != row.key or line["status"] != "failed":
            return None
        return line["job_id"] or None

    def record(self, row: BatchRow, **values: Any) -> None:
        line = {name: "" for name in RESULT_COLUMNS}
        line.update({name: "" if value is None else str(value) for name, value in values.items()})
        line["row"], line["key"] = str(row.number), row.key
        self.rows[row.number] = line
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.part")
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=RESULT_COLUMNS)
            writer.writeheader()
            for number in sorted(self.rows):
                writer.writerow(self.rows[number])
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.path)
