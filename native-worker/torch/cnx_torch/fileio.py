"""Atomic file writes: a crash or an error never leaves a partial file where a complete one is expected."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_file(path: str, binary: bool = True) -> Iterator[IO[Any]]:
    """Yields a temporary file beside `path`; on success it is synced and renamed over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
