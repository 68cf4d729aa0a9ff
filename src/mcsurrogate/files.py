"""Writing outputs safely: atomic files and directories, output locks, the "exists already" refusal, strict JSON.

No torch here (tensors are :mod:`mcsurrogate.persistence`'s), so the I/O layer stays light to import.

The rules every output of mcsurrogate follows:

* it is written under a temporary name ``.NAME.tmp-PID-XXXX`` beside its destination and renamed to ``NAME`` only
  when complete, so a killed writer never leaves a partial file under the final name;
* the rename never replaces an existing ``NAME`` unless the caller asked to overwrite
  (:func:`publish` links or renames without replacing), so two writers racing for one name cannot both win;
* while it is being written, ``NAME`` is locked (:func:`output_lock`, a ``.NAME.lock`` file held with ``flock``):
  a second writer fails at once with :class:`~mcsurrogate.errors.OutputExistsError`, before doing its work;
  the lock dies with its process, SIGKILL included, and the next writer removes the temporary files that dead
  writers left (:func:`clean_stale_temporaries`);
* files get the usual mode of the user's umask (``mkstemp`` and ``mkdtemp`` would make them 0600 and 0700);
* an output location that cannot be written is reported before any work (:func:`check_writable`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ModelDirectoryError, OutputError, OutputExistsError

__all__ = [
    "atomic_directory",
    "atomic_write_json",
    "atomic_write_text",
    "check_writable",
    "clean_stale_temporaries",
    "output_directory",
    "output_lock",
    "publish",
    "read_json",
    "refuse_existing",
    "replace_atomically",
    "temporary_path",
]


# -- the "exists already" refusal and the writability check -----------------------------------------------
def refuse_existing(
    path: str | os.PathLike[str],
    overwrite: bool,
    hint: str = "choose another name or pass overwrite=True (--overwrite)",
    *,
    empty_directory_ok: bool = False,
) -> Path:
    """Raise :class:`OutputExistsError` ("PATH exists already; HINT") if ``path`` exists and not ``overwrite``.

    ``empty_directory_ok`` accepts an existing empty directory (an output folder made beforehand). Returns the path.

    >>> refuse_existing("/nonexistent/out.parquet", overwrite=False)
    PosixPath('/nonexistent/out.parquet')
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return path
    if empty_directory_ok and path.is_dir() and not any(path.iterdir()):
        return path
    state = "exists and is not empty" if empty_directory_ok and path.is_dir() else "exists already"
    raise OutputExistsError(f"{path} {state}; {hint}")


def _existing_ancestor(path: Path) -> Path:
    probe = path.absolute().parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable(path: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """Check, before any work, that the output ``path`` can be created: raise :class:`OutputError` naming the reason.

    The nearest existing ancestor of ``path`` must be a directory in which this process can create files (tested by
    creating and deleting one, so read-only mounts and ACLs count, not only the mode bits); a file output
    (``directory=False``) must not be an existing directory. Missing parent directories are fine (they are created
    when the output is written). Returns the path.
    """
    path = Path(path)
    if not directory and path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {path}: {ancestor} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mcsurrogate-write-test-", dir=ancestor)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: cannot create files in {ancestor} ({exc.strerror})") from exc
    os.close(fd)
    os.unlink(probe)
    return path


# -- temporary names, umask, renames without replacing ------------------------------------------------------
def temporary_path(dest: str | os.PathLike[str]) -> Path:
    """A fresh, recognisable temporary file beside ``dest`` (``.NAME.tmp-PID-XXXX``, created empty)."""
    dest = Path(dest)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` alone would set it)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):  # directory fsync: not possible on every platform
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rename_no_replace(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest``; raise :class:`FileExistsError` if ``dest`` exists, in one step for files.

    A file is hard-linked to ``dest`` (``link(2)`` fails if ``dest`` exists: the check and the rename are one atomic
    step) and its temporary name removed. A directory is renamed with ``rename(2)``, which refuses a non-empty
    ``dest``; only an *empty* directory appearing between the check and the rename could be replaced (no data lost).
    On a file system without hard links a file falls back to check-then-rename (the output lock still guards it).
    """
    if src.is_dir():
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
        try:
            os.rename(src, dest)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from exc
            raise
        return
    try:
        os.link(src, dest)
    except FileExistsError:
        raise
    except OSError as exc:  # no hard links here (some FUSE and network file systems)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from exc
        os.replace(src, dest)
        return
    os.unlink(src)


def publish(tmp: str | os.PathLike[str], dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Move the complete temporary file ``tmp`` to ``dest``: fsync it, give it the umask's mode, rename it.

    Without ``overwrite`` an existing ``dest`` is never replaced, even one that appeared while ``tmp`` was written:
    :class:`OutputExistsError` (and ``tmp`` stays for the caller to delete). Returns ``dest``.
    """
    tmp, dest = Path(tmp), Path(dest)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    if overwrite:
        os.replace(tmp, dest)
    else:
        try:
            _rename_no_replace(tmp, dest)
        except FileExistsError:
            raise OutputExistsError(
                f"{dest} appeared while it was being written (another process?); it was left as it is"
            ) from None
    _fsync_directory(dest.parent)
    return dest


def replace_atomically(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """fsync ``tmp``, give it the umask's mode, rename it over ``dest`` (replacing it), fsync the directory."""
    publish(tmp, dest, overwrite=True)


# -- output locks and the leftovers of dead writers -------------------------------------------------------
_TEMPORARY = re.compile(r"\.(?:tmp|old)-(\d+)-")
_held: dict[str, tuple[int, int, int]] = {}  # lock file -> (fd, depth, owning thread)
_held_guard = threading.Lock()


def _lock_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.lock"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_temporaries(dest: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` beside ``dest`` left by processes that no longer run.

    Call it only while holding :func:`output_lock` of ``dest`` (which :func:`output_lock` does): then no live
    mcsurrogate writer can own them. Files of a live process (same host, PID running) are kept. Returns what was
    deleted.
    """
    dest = Path(dest)
    prefix = f".{dest.name}"
    removed = []
    with contextlib.suppress(OSError):
        for entry in dest.parent.iterdir():
            if not entry.name.startswith(prefix):
                continue
            m = _TEMPORARY.match(entry.name, len(prefix))
            if m is None or int(m.group(1)) == os.getpid() or _process_alive(int(m.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _lock_holder(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = os.pread(fd, 512, 0).decode().strip()
        if text:
            return text
    return "unknown process"


@contextlib.contextmanager
def output_lock(dest: str | os.PathLike[str], *, purpose: str = "") -> Iterator[Path]:
    """Hold the lock of the output ``dest`` for the block (re-entrant in the same thread); yields ``dest``.

    The lock is ``flock`` on ``.NAME.lock`` beside ``dest`` (NFS v4 honours it across machines), released when the
    block ends or the process dies. Another holder raises :class:`OutputExistsError` at once, naming its PID and
    ``purpose`` ("mcsurrogate train, checkpoints in tm.checkpoints"). Taking the lock also deletes the temporary
    files of dead writers of ``dest``; leaving it deletes the lock file. An unwritable directory raises
    :class:`OutputError`. Platforms without ``fcntl`` (Windows) get no lock, only the no-replace rename.
    """
    dest = Path(dest)
    lock = _lock_path(dest.absolute())
    key, me = str(lock), threading.get_ident()
    with _held_guard:
        if key in _held:
            fd, depth, owner = _held[key]
            if owner != me:
                raise OutputExistsError(f"{dest} is being written by another thread of this process")
            _held[key] = (fd, depth + 1, owner)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield dest
        finally:
            with _held_guard:
                fd, depth, owner = _held[key]
                _held[key] = (fd, depth - 1, owner)
        return
    created = _missing_directories(lock.parent)
    fd = _acquire(dest, lock, purpose)
    with _held_guard:
        _held[key] = (fd, 1, me)
    try:
        clean_stale_temporaries(dest)
        yield dest
    finally:
        with _held_guard:
            del _held[key]
        with contextlib.suppress(OSError):
            lock.unlink()  # before unlocking: a waiting process then finds no file, or a fresh one
        os.close(fd)
        for folder in created:  # made for the lock file; still empty if nothing was written (deepest first)
            try:
                folder.rmdir()
            except OSError:
                break


def _missing_directories(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _acquire(dest: Path, lock: Path, purpose: str) -> int:
    if sys.platform == "win32":  # pragma: no cover - no flock
        return os.open(os.devnull, os.O_RDONLY)
    import fcntl

    for attempt in range(100):
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # an empty parent removed by a writer that just finished: make it again
            if attempt < 99:
                continue
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {dest}: cannot create files in {lock.parent} ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputExistsError(
                f"{dest} is being written by another process ({holder}); wait for it to finish or choose another output"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last holder deleted while we opened it
            break
        os.close(fd)
    else:  # pragma: no cover - a hundred lock files replaced under our hands
        raise OutputError(f"cannot lock {dest}: its lock file {lock} keeps being replaced")
    info = f"pid {os.getpid()}" + (f": {purpose}" if purpose else "")
    os.ftruncate(fd, 0)
    os.pwrite(fd, info.encode(), 0)
    return fd


# -- directories ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest`` to fill; when the block ends without an error it becomes ``dest``.

    An existing ``dest`` is refused with :class:`OutputExistsError` before the block (and again at the rename, if
    one appeared meanwhile) unless ``overwrite``, which moves the old one aside, renames, then deletes it. On an error
    the temporary directory is removed and ``dest`` stays as it was. ``dest`` is locked (:func:`output_lock`) for
    the block, and gets the umask's mode (not ``mkdtemp``'s 0700), so a colleague or a dask worker can read it.
    """
    dest = Path(dest)
    with output_lock(dest):
        refuse_existing(dest, overwrite, "choose another directory or pass overwrite=True (--overwrite)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            if overwrite and (dest.exists() or dest.is_symlink()):
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
                os.replace(dest, old)
                os.replace(tmp, dest)
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
            else:
                try:
                    _rename_no_replace(tmp, dest)
                except FileExistsError:
                    raise OutputExistsError(
                        f"{dest} appeared while it was being written (another process?); it was left as it is"
                    ) from None
            _fsync_directory(dest.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Create the output folder ``path`` for the block; if the block fails while it is still empty, remove it.

    For commands that write several files into a folder one by one (``mcsurrogate scan``): the folder is checked
    (:func:`check_writable`; a non-empty one needs ``overwrite``) and locked before the work, and a failure leaves
    no empty folder behind (nor the empty parents created for it). Files already written stay.
    """
    path = Path(path)
    check_writable(path, directory=True)
    refuse_existing(path, overwrite, "choose another --out or pass --overwrite", empty_directory_ok=True)
    created: list[Path] = []
    probe = path.absolute()
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        with output_lock(path):
            # again under the lock: a writer that finished between the first check and the lock filled it
            refuse_existing(path, overwrite, "choose another --out or pass --overwrite", empty_directory_ok=True)
            path.mkdir(parents=True, exist_ok=True)
            yield path
    except BaseException:  # the lock file is gone by now: the parents can be empty again
        for folder in created:  # deepest first; stops at the first that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


# -- text and JSON ----------------------------------------------------------------------------------------
def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``dest`` atomically (temporary file, fsync, rename over any previous ``dest``)."""
    dest = Path(dest)
    tmp = temporary_path(dest)
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_atomically(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (``json.dumps``' ``default``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def atomic_write_json(dest: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as strict JSON (no NaN or infinity; numpy numbers as numbers) to ``dest`` atomically.

    A non-finite number raises :class:`ValueError` naming ``dest`` (strict JSON has none; store ``None`` instead).
    """
    try:
        text = json.dumps(data, indent=indent, allow_nan=False, default=_plain)
    except ValueError as exc:
        raise ValueError(f"{dest}: {exc} (NaN or infinity): store None for a missing number") from exc
    atomic_write_text(dest, text)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object; missing or damaged files raise :class:`ModelDirectoryError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelDirectoryError(f"{path}: file missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data
