"""Files in a folder that only its owner may write: read and written without trusting names.

The folder for operator requests (``control.py``) is the daemon's way in from the command
line, so whatever else ends up in it must not steer, block or crash the daemon: files are
opened relative to the folder's own descriptor, never through a symlink (O_NOFOLLOW),
never waited on (O_NONBLOCK: a FIFO), only when they are plain files of an expected owner,
and read up to a limit; new files are created with O_EXCL under a random name, so that
nothing planted can redirect a write. ``folder_problem`` says in one line why a folder
itself cannot be trusted, and what to run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import stat
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def who(uid: int) -> str:
    with contextlib.suppress(KeyError):
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    return f"uid {uid}"


def user_name(uid: int) -> str:
    with contextlib.suppress(KeyError):
        return pwd.getpwuid(uid).pw_name
    return str(uid)


def folder_problem(where: Path, st: os.stat_result, owner: int) -> str | None:
    """Why no request may be taken from ``where`` (``st``, its fstat) for a daemon running
    as ``owner``: a folder another user can write lets that user steer the daemon."""
    if st.st_uid != owner:
        return (f"{where} belongs to {who(st.st_uid)}, not to {who(owner)} as whom "
                "klash-sync run runs (a command run as root may have left it so), and no "
                f"request is taken from it; run: chown -R {user_name(owner)} {where}")
    if st.st_mode & 0o022:
        return (f"{where} can be written by other users (mode {st.st_mode & 0o777:o}), and no "
                f"request is taken from it; run: chmod 700 {where}")
    return None


def write_private(dfd: int, name: str, data: str, owner: int | None = None) -> None:
    """Write ``name`` in the folder open as ``dfd`` atomically, readable by its owner only.

    The temporary file is new (O_EXCL) and never a symlink (O_NOFOLLOW), so nothing
    planted under its name can redirect the write; ``owner``: hand it to that user.
    """
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
    try:
        if owner is not None and owner != os.geteuid():
            os.fchown(fd, owner, -1)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise


def _kind(mode: int) -> str | None:
    """What a file that is not a plain file is, in words; None for a plain file."""
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return None if stat.S_ISREG(mode) else "not a regular file"


def _refusal(st: os.stat_result, owners: tuple[int, ...], limit: int) -> str | None:
    kind = _kind(st.st_mode)
    if kind is not None:
        return f"{kind}, not a regular file"
    if st.st_uid not in owners:
        return f"owned by {who(st.st_uid)}, not by the daemon's user or root"
    if st.st_size > limit:
        return f"larger than {limit} bytes"
    return None


def read(dfd: int, name: str, owners: tuple[int, ...], limit: int) -> tuple[bytes | None, str]:
    """The bytes of ``name`` if it is a plain file of one of ``owners`` no larger than
    ``limit``; else None and why. Never follows a symlink, never waits on a FIFO and
    never reads more than ``limit`` + 1 bytes (the file may grow while it is read)."""
    try:
        why = _refusal(os.stat(name, dir_fd=dfd, follow_symlinks=False), owners, limit)
        if why is not None:
            return None, why
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as e:
        return None, f"cannot be read ({e.strerror})"
    try:
        why = _refusal(os.fstat(fd), owners, limit)  # it may have been swapped meanwhile
        if why is not None:
            return None, why
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            return None, f"larger than {limit} bytes"
        return b"".join(chunks), ""
    except OSError as e:
        return None, f"cannot be read ({e.strerror})"
    finally:
        os.close(fd)


def remove(dfd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        try:
            os.unlink(name, dir_fd=dfd)
        except IsADirectoryError:
            os.rmdir(name, dir_fd=dfd)
