"""The datasets a backtest reads: one application per row.

The dataset (CSV, JSON Lines or Parquet; see read_rows) has one application per row:

- a column per input field of the policy, named like the field (other columns are ignored by the
  policy, and can be used with `--by`); an empty cell is an absent field (its default applies);
- a column per connector, named by its qualified name (`bureau.serasa`), holding the answer as
  JSON (in JSON Lines, an object or a JSON string); an empty cell or no such column means the
  connector did not answer (the policy sees it unavailable);
- `as_of` (optional): the date of the application (AAAA-MM-DD), the policy's `today`;
- the label column (`--label`, optional): 1/0, true/false, sim/não: did it default;
- the amount column (`--amount`, optional): the money at stake, for amount-weighted rates.

Rows that cannot be read are counted and listed (row number, column, what is wrong), never fatal.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from regua.engine.connectors import ConnectorError, Connectors

_TRUE = {"1", "true", "sim", "s", "yes", "y", "verdadeiro", "t"}
_FALSE = {"0", "false", "não", "nao", "n", "no", "falso", "f"}


class DatasetError(Exception):
    """The dataset as a whole cannot be used (unreadable file, no such column)."""


#: Rows per Arrow batch read from a Parquet file (the driver holds one batch at a time).
PARQUET_BATCH = 4096
#: Bytes a Parquet column chunk is read by: a row group's compressed chunks are streamed through a
#: buffer of this size rather than read whole, so a file written as one huge row group is no worse.
PARQUET_READ_BUFFER = 1 << 16
_SNIFF_BYTES = 1 << 20


def read_rows(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(row number as a person counts it: the header is line 1 of a CSV, row dicts), streamed:
    one line (a Parquet file: one batch) in memory at a time, whatever the file's size."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise DatasetError(f"{path}: a dataset is a .csv, .jsonl or .parquet file")
    encoding = _encoding(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 — closed by the with below; opened apart to name an unreadable file
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror or error}") from None
    with handle:
        lines = _lines(path, handle, encoding)
        if suffix != ".csv":
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as error:
                    yield number, {"__error__": f"not JSON: {error}"}
                    continue
                yield number, row if isinstance(row, dict) else {"__error__": "not a JSON object"}
            return
        header = next(lines, "")
        if not header.strip():
            raise DatasetError(f"{path}: empty file, no header")
        delimiter = max(",;\t", key=header.count)
        # Excel pt-BR saves `;`-separated Windows-1252 with decimal commas and dd/mm/aaaa dates:
        # cells are turned into canonical text where the policy's field type says what they hold.
        brazilian = delimiter != ","
        # csv.DictReader's rows, made here without its per-row Python overhead: cells by the header's
        # names, missing cells None, blank lines skipped; a row with more cells than the header is listed.
        reader = csv.reader(itertools.chain([header], lines), delimiter=delimiter)
        names = next(reader)
        width = len(names)
        for cells in reader:
            if not cells:
                continue
            if len(cells) > width:
                yield reader.line_num, {"__error__": f"{len(cells) - width} cell(s) more than the header has"}
                continue
            row = dict(zip(names, cells))
            if len(cells) < width:
                for name in names[len(cells):]:
                    row[name] = None
            if brazilian:
                row["__brazilian__"] = True
            yield reader.line_num, row


def _encoding(path: Path) -> str:
    """UTF-8 (with or without a byte-order mark) when the file's first megabyte decodes as such,
    else Windows-1252, what Excel pt-BR saves; a binary file is refused."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror or error}") from None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DatasetError(f"{path}: UTF-16 text; save the file as UTF-8 (or as Excel's CSV)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        if b"\0" in head:
            raise DatasetError(f"{path}: a binary file, not CSV or JSON Lines text") from None
        return "cp1252"


def _lines(path: Path, handle, encoding: str) -> Iterator[str]:
    """The file's lines as text, decoded one by one, so an error names its line exactly."""
    for number, raw in enumerate(handle, 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            yield raw.decode(encoding, errors="replace" if encoding == "cp1252" else "strict")
        except UnicodeDecodeError as error:
            raise DatasetError(f"{path}:{number}: not UTF-8 text (byte {error.start + 1} of the line); save the "
                               "file as UTF-8 (or as Excel's CSV, Windows-1252, throughout)") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of a Parquet file, batch by batch (pyarrow, the `lab` extra). Row numbers count from 1.
    Values become what a JSON Lines row would hold: dates and instants as ISO text, decimals as
    text, nested columns (a connector's answer as a struct) as dicts and lists."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path}: reading Parquet needs pyarrow: pip install 'regua[lab]'") from None
    try:
        # pyarrow's default pre_buffer=True caches every column chunk it has read until the file is
        # closed: the driver's memory then grows with the file (about its compressed size). Without
        # it, and with a read buffer, only the batch being read is held; without threads, pyarrow's
        # per-thread allocator heaps stay few (the evaluation, not decoding, is the cost).
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER)
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 — pyarrow raises its own types for a file that is not Parquet
        raise DatasetError(f"{path}: not a Parquet file ({type(error).__name__})") from None
    import pyarrow.types as types

    def plain(column) -> bool:  # columns whose Python values are already what _plain makes of them
        kind = column.type
        return (types.is_string(kind) or types.is_large_string(kind) or types.is_integer(kind)
                or types.is_boolean(kind) or types.is_null(kind))

    number = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, use_threads=False):
            # column by column: only the columns that need it go through _plain, value by value
            names = batch.schema.names
            values = [column.to_pylist() if plain(column) else [_plain(v) for v in column.to_pylist()]
                      for column in batch.columns]
            del batch  # its Arrow buffers go back to the pool before the rows are evaluated
            for row in zip(*values):
                number += 1
                yield number, dict(zip(names, row))


def _plain(value):
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (Decimal, float)):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def count_rows(path: str | Path) -> int:
    """About how many rows (lines; a Parquet file's row count), to choose how many workers."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        with open(path, "rb") as handle:
            return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    except Exception:  # noqa: BLE001 — reading the rows names the problem properly
        return 0


def columns(path: str | Path) -> list[str]:
    for _number, row in read_rows(path):
        if "__error__" not in row:
            return list(row)
    return []


def parse_label(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{str(value)[:40]!r} is not a 0/1 label (1/0, true/false, sim/não)")


class DatasetConnectors(Connectors):
    """Answers from the current row's connector columns; no column or an empty cell: unavailable."""

    def __init__(self, names):
        self.current: dict[str, Any] = {}
        super().__init__({name: self._answer(name) for name in names})

    def _answer(self, name: str):
        def answer(*_args):
            value = self.current.get(name)
            if value is None:
                raise ConnectorError("NOT_PROVIDED", f"the dataset has no answer of {name} for this row")
            return value

        answer.inline = True
        return answer
