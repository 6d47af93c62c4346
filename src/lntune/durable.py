"""Durable writes shared by skins, checkpoints and the sweep store: a file is there whole or not at all."""
from __future__ import annotations

import os
from pathlib import Path

from lntune.errors import DiskError


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename over `path`, fsync the folder: after a crash `path` holds the old bytes or
    the new ones, and a file written after it (skin.json after the tensors) never reaches disk first."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # ENOSPC, EROFS, EACCES, a special file system: said in one line by the caller
        tmp.unlink(missing_ok=True)
        raise DiskError(f"could not write {path} ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def make_dir(path: Path) -> None:
    """mkdir -p, with a DiskError naming the folder when the file system refuses it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiskError(f"could not make the folder {path} ({e.strerror or e})") from None


def next_dir(out: Path) -> Path:
    """Where a run that replaces the finished skin at `out` works until its own skin is whole (a hidden sibling)."""
    out = Path(out)
    return out.parent / f".{out.name}.next"


def exchange(a: Path, b: Path) -> None:
    """Swap two folders in one step where the system can (Linux renameat2 RENAME_EXCHANGE): a crash leaves each
    name holding one whole folder. Elsewhere three renames, between which `b`'s old folder waits beside it."""
    import ctypes

    a, b = Path(a), Path(b)
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    at_cwd, exchange_flag = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    if renameat2 is not None and renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange_flag) == 0:
        fsync_dir(a.parent)
        return
    held = b.with_name(f"{b.name}.old")
    os.replace(b, held)
    os.replace(a, b)
    os.replace(held, a)
    fsync_dir(a.parent)


def replace_folder(new: Path, out: Path) -> None:
    """Put the whole folder `new` (a skin) in the place of `out` by exchanging them, then remove the old one: at
    every crash point `out` holds one whole folder, the old or the new."""
    import shutil

    exchange(Path(new), Path(out))
    shutil.rmtree(new, ignore_errors=True)  # now the old one; a crash here leaves it for the next run to remove


def remove_stale(folder: Path) -> list[Path]:
    """Delete the temp files that write_atomic calls killed mid-write left in `folder` (their process is gone);
    a live process's temp file is kept. Returns what was deleted."""
    gone = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: asks whether the process exists, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def fsync_dir(path: Path) -> None:
    """Make renames, unlinks and new entries in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # no directory handles (Windows): the files themselves are synced
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a folder; the same holds
        pass
    finally:
        os.close(fd)
