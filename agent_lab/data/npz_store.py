"""A byte-reproducible ``.npz`` writer and a reader for JPEG-per-split archives.

The format is exactly what ``np.savez`` writes (uncompressed zip of ``.npy`` members) except
that every member carries a fixed timestamp, so rewriting the same arrays gives the same bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz_reproducible(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` whose bytes depend only on the arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    os.replace(tmp, path)


def load_npz_bytes(data: bytes) -> dict[str, np.ndarray]:
    """Read an ``.npz`` held in memory into a dict of arrays (no pickled objects allowed)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def pack_blobs(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate byte strings into one uint8 array plus int64 offsets (``len(blobs) + 1``)."""
    sizes = np.fromiter((len(blob) for blob in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(sizes)])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return data, offsets


def unpack_blobs(data: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Inverse of ``pack_blobs``: one uint8 array view per stored blob."""
    return [data[start:end] for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
