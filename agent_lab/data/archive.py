"""Reading image-folder archives (``<split>/<class>/<file>``) straight from a tar file."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath

from .errors import DataUnavailableError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
GZIP_MAGIC = b"\x1f\x8b"
EXPECTED_LAYOUT = (
    "expected a tar archive (usually .tar.gz) of <split>/<class>/<image> files, such as cifar10-jpeg.tar.gz "
    "holding train/<class>/*.jpg and test/<class>/*.jpg"
)
# What tarfile and the decompressors raise for a file that is not a whole, valid archive.
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)

# {split: {class name: [(file name, encoded bytes), ...] sorted by file name}}
ArchiveContents = dict[str, dict[str, list[tuple[str, bytes]]]]


def read_image_archive(path: str | Path, splits: tuple[str, ...] | None = None) -> ArchiveContents:
    """Read every image of a ``<split>/<class>/<file>`` tar archive (any compression).

    Members are matched by their last three path components, so a leading folder
    (``cifar10/train/cat/0001.jpg``) is accepted. Files are sorted by name within a class.
    Raises ``DataUnavailableError`` naming the file when it is not a whole, valid tar archive.
    """
    path = Path(path)
    try:
        contents = _read_members(path, splits)
    except _READ_ERRORS as error:
        raise DataUnavailableError(_unreadable_message(path, error)) from error
    return {
        split: {name: sorted(files) for name, files in sorted(classes.items())}
        for split, classes in sorted(contents.items())
    }


def _read_members(path: Path, splits: tuple[str, ...] | None) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    contents: dict[str, dict[str, list[tuple[str, bytes]]]] = defaultdict(lambda: defaultdict(list))
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            split, class_name, file_name = parts[-3:]
            if splits is not None and split not in splits:
                continue
            handle = archive.extractfile(member)
            assert handle is not None  # regular files always have content
            contents[split][class_name].append((file_name, handle.read()))
        # tarfile ends the listing quietly when the data stops where a header should start, as it
        # does at the all-zero end-of-archive block; only the marker leaves a whole block read.
        if archive.fileobj.tell() - archive.offset < tarfile.BLOCKSIZE:
            raise EOFError("the tar data ends without its end-of-archive marker")
        # Reading the compressed stream to its end makes gzip/bz2/xz verify their checksums.
        while archive.fileobj.read(1 << 20):
            pass
    return contents


def _unreadable_message(path: Path, error: BaseException) -> str:
    """One line naming ``path``, what is wrong with it and the remedy."""
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as os_error:
        return f"archive {path} cannot be read ({os_error}); {EXPECTED_LAYOUT}"
    if not head:
        problem = "is empty (0 bytes)"
    elif isinstance(error, EOFError) or "unexpected end of data" in str(error):
        problem = f"is truncated ({error or 'the compressed data ends early'})"
    elif path.name.endswith((".gz", ".tgz")) and not head.startswith(GZIP_MAGIC):
        problem = f"is not gzip-compressed although its name says so, nor a tar archive (it starts with {head!r})"
    elif isinstance(error, tarfile.ReadError) and "could not be opened" in str(error):
        kind = "is gzip-compressed but not" if head.startswith(GZIP_MAGIC) else "is not"
        problem = f"{kind} a tar archive (it starts with {head!r})"
    else:
        problem = f"is corrupt ({type(error).__name__}: {' '.join(str(error).split())})"
    return f"archive {path} {problem}; re-copy or re-download it; {EXPECTED_LAYOUT}"
