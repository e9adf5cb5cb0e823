"""A batch file (CSV, JSONL, or a .txt of one prompt a line) read into job requests, and
its results file.

Each row's Idempotency-Key comes from its content (and, for identical rows, which
one it is), so running the same file again sends nothing twice: a row already done
is skipped, and a row sent before whose answer never came back is answered by the
server with the job it already has. A row without a seed gets one drawn from its
key, the same every run, so its request (and its key) never changes.

The results file is named after its input (`rows.csv` → `rows.results.csv` in the output
folder) and says which input it belongs to: two batch files run into one folder keep
their results apart, and a results file of another input is refused, never mixed in.
Each row is recorded when it is sent (`submitted`, with its job) and again when it ends,
so a batch run again knows which rows are already running and pays for none of them.
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
RESULT_COLUMNS = (
    "row",
    "prompt",
    "job_id",
    "status",
    "files",
    "seed",
    "cost",
    "error",
    "key",
    "input",
)
# A row recorded with one of these was sent, and its job may still be running.
SENT_STATUSES = frozenset({"submitted", "submitting", "reconciling", "pending", "downloading"})
TEXT_SUFFIXES = (".txt", ".text")


class BatchFileError(ValueError):
    """The file cannot be read as a batch; the message names the row and column."""


@dataclass
class BatchRow:
    number: int  # from 1, as a person counts the file's rows
    body: dict[str, Any]
    key: str


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV, JSONL or text file, as {API field: value}; empty cells left out.
    A text file is one prompt a line (blank lines and lines starting with # skipped)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BatchFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BatchFileError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() in TEXT_SUFFIXES:
        raw_rows: list[Mapping[str, Any]] = [
            {"prompt": line.strip()}
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
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
    # Strict: a quote never closed is an error, not a cell swallowing the rest of the file.
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True, strict=True)
    try:
        if not reader.fieldnames:
            raise BatchFileError(f"{path}: no header row (prompt, size, seed, ...)")
        return [row for row in reader if any((value or "").strip() for value in row.values())]
    except csv.Error as exc:
        where = _quote_opened(text) or reader.line_num
        raise BatchFileError(
            f"{path}, line {where}: a quote opens a cell that is never closed"
            if "unexpected end" in str(exc)
            else f"{path}, line {reader.line_num}: {exc}"
        ) from None


def _quote_opened(text: str) -> int | None:
    """The line where a quote that is never closed opens (quotes counted through the file)."""
    inside, opened = False, None
    for number, line in enumerate(text.splitlines(), start=1):
        for character in line:
            if character == '"':
                inside = not inside
                if inside:
                    opened = number
    return opened if inside else None


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


def results_path(batch_file: Path, folder: Path) -> Path:
    """Where a batch file's results go: `rows.csv` → `<folder>/rows.results.csv`."""
    return folder / f"{batch_file.stem}.results.csv"


@dataclass
class Results:
    """The results file: one line per row tried, rewritten whole after each change (written
    aside and renamed, so a crash leaves the previous version, never half a file)."""

    path: Path
    # The batch file these are the results of (its resolved path).
    input: str
    rows: dict[int, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, *, batch_file: Path) -> Results:
        """The results of `batch_file` kept at `path`; BatchFileError if they belong to
        another batch file."""
        results = cls(path, str(batch_file.resolve()))
        if not path.exists():
            return results
        try:
            with path.open(newline="", encoding="utf-8") as file:
                lines = list(csv.DictReader(file))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BatchFileError(f"{path}: cannot be read as results ({exc})") from None
        owners = {line.get("input") or "" for line in lines} - {results.input}
        if owners:
            other = sorted(owners)[0] or "another batch file"
            raise BatchFileError(
                f"{path} holds the results of {other}, not of {results.input}: give this "
                "batch another --out folder (or move that file away)"
            )
        for line in lines:
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

    def running_job(self, row: BatchRow) -> str | None:
        """The job this row (the same request) was sent as, if it may still be running."""
        line = self.rows.get(row.number)
        if line is None or line["key"] != row.key or line["status"] not in SENT_STATUSES:
            return None
        return line["job_id"] or None

    def failed_job(self, row: BatchRow) -> str | None:
        """The job a row's earlier run failed with (not charged), if it did."""
        line = self.rows.get(row.number)
        if line is None or line["key"] != row.key or line["status"] != "failed":
            return None
        return line["job_id"] or None

    def record(self, row: BatchRow, **values: Any) -> None:
        line = {name: "" for name in RESULT_COLUMNS}
        line.update({name: "" if value is None else str(value) for name, value in values.items()})
        line["row"], line["key"], line["input"] = str(row.number), row.key, self.input
        line["prompt"] = str(row.body.get("prompt") or "")
        self.rows[row.number] = line
        self.save()

    def typed(self) -> list[dict[str, Any]]:
        """The lines as a script reads them: numbers as numbers, files as a list."""
        return [_typed_line(self.rows[number]) for number in sorted(self.rows)]

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


def _typed_line(line: Mapping[str, str]) -> dict[str, Any]:
    def number(text: str) -> int | float | None:
        if not text:
            return None
        value = float(text)
        return int(value) if value.is_integer() and "." not in text else value

    return {
        "row": int(line["row"]),
        "prompt": line["prompt"],
        "job_id": int(line["job_id"]) if line["job_id"].isdecimal() else None,
        "status": line["status"],
        "files": [name for name in line["files"].split(";") if name],
        "seed": int(line["seed"]) if line["seed"].lstrip("-").isdecimal() else None,
        "cost": number(line["cost"]),
        "error": line["error"] or None,
        "key": line["key"],
    }
