"""One way to write files that matter (models, ONNX files, figures, checkpoints): atomically.

The data goes to a temporary file in the target's folder, is flushed and fsync'ed, gets the
permissions a plain ``open(path, "w")`` would give (``0o666`` minus the umask; ``mkstemp``
alone leaves ``0o600``), and is renamed over the target with ``os.replace``; the folder is
fsync'ed so the rename survives a power cut. An interrupted write leaves the old file (or
none) and no temporary file behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], object], *, suffix: str = ".part") -> Path:
    """Call ``write(f)`` on a binary file object, then put the result at ``path`` atomically.

    Parameters
    ----------
    path : str or PathLike
        The target; missing parent folders are created.
    write : callable
        ``write(f)`` writes the whole content to the open binary file ``f``.
    suffix : str
        Suffix of the temporary file's name (tools that pick a format by extension, such
        as matplotlib, need the real one).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return path
