"""IDX files (the MNIST format): read whole or by rows, gzipped or not, within their header's word.

Used by the `mnist` data set (`components.data`); a file that is not what it says raises DataError.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Sequence

import torch

from ..errors import DataError

MAX_IDX_DIMS = 4  # MNIST's files have 1 (labels) or 3 (images) dimensions


def idx_header(f: io.BufferedIOBase, path: str) -> tuple[tuple[int, ...], int]:
    """(dims, header size) of an unsigned-byte IDX file open at its start; DataError if it is none."""
    head = f.read(4)
    if len(head) < 4 or head[:3] != b"\x00\x00\x08" or not 1 <= head[3] <= MAX_IDX_DIMS:
        raise DataError(f"{path} is not an unsigned-byte IDX file (its first 4 bytes say otherwise)")
    raw_dims = f.read(4 * head[3])
    if len(raw_dims) < 4 * head[3]:
        raise DataError(f"{path} is truncated in its header")
    return struct.unpack(">" + "I" * head[3], raw_dims), 4 + len(raw_dims)


def read_idx(path: str, rows: list[int] | None = None) -> torch.Tensor:
    """A tensor from an IDX file (the MNIST format), gzipped or not: every row, or only `rows`.

    Only the rows asked for are kept in memory (a gzipped file is streamed through once), so 100
    examples of a huge file cost 100 rows. The header is checked against the file's length.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            dims, start = idx_header(f, path)
            row = math.prod(dims[1:])
            if not path.endswith(".gz"):
                size = os.fstat(f.fileno()).st_size - start
                if size != dims[0] * row:
                    what = "truncated" if size < dims[0] * row else "longer than its header says"
                    raise DataError(f"{path} is {what}: expected {dims[0] * row} bytes, found {size}")
            wanted: Sequence[int] = range(dims[0]) if rows is None else sorted(set(rows))
            if rows is None:
                body = bytearray(f.read(dims[0] * row))
                if len(body) < dims[0] * row:
                    raise DataError(f"{path} is truncated: expected {dims[0] * row} bytes, found {len(body)}")
            else:
                body = _read_rows(f, wanted, row, path, dims[0])
            if rows is None and f.read(1):
                raise DataError(f"{path} is longer than its header says ({dims[0]} rows)")
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    data = torch.frombuffer(body, dtype=torch.uint8) if body else torch.empty(0, dtype=torch.uint8)
    data = data.reshape(len(wanted), *dims[1:])
    if rows is not None:  # back into the order asked for
        order = {r: i for i, r in enumerate(wanted)}
        data = data[torch.tensor([order[r] for r in rows], dtype=torch.long)]
    return data


def _read_rows(f: io.BufferedIOBase, wanted: Sequence[int], row: int, path: str, n_rows: int) -> bytearray:
    """Rows `wanted` (sorted) of an open IDX body: skipped rows are read past in 16 MiB pieces."""
    body, position = bytearray(), 0
    for r in wanted:
        skip = (r - position) * row
        while skip > 0:
            skipped = len(f.read(min(skip, 1 << 24)))
            if not skipped:
                break
            skip -= skipped
        piece = f.read(row)
        if len(piece) < row:
            raise DataError(f"{path} is truncated: it ends before row {r + 1} of {n_rows}")
        body += piece
        position = r + 1
    return body


def idx_rows(path: str) -> tuple[int, int]:
    """(rows, bytes per row) from an IDX file's header alone."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            dims, _ = idx_header(f, path)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    return dims[0], math.prod(dims[1:])


def find_idx_file(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"no {stem}[.gz] in {folder}; MNIST is never downloaded, put the IDX files there")
