"""Reading and writing event records: ROOT (uproot) and Parquet (awkward + pyarrow).

This is the only module of mcsurrogate that takes file paths; everything else takes and returns
awkward arrays. Events are awkward record arrays, one record per event, whose fields are numbers
(``mu``), lists of numbers, or lists of records (``photons`` as ``var * {pt, eta, phi}``).

ROOT files hold such collections as a counter branch ``n<name>`` plus one jagged branch
``<name>_<field>`` per field (what :func:`write_events` writes, and the NanoAOD convention);
:func:`read_events` zips them back into a list of records, so a round trip returns the layout that
was written. ROOT output also accepts records that are not in lists (``met: {pt, phi}``): uproot
stores them as branches ``met_pt``, ``met_phi``, which come back as flat columns of those names.
RNTuples are read as well as TTrees.

Writes are atomic: the data go to a temporary file ``.<name>.tmp-<pid>-<random>`` in the
destination's directory, which is fsynced and renamed to the final name only when complete (never over an
existing file without ``overwrite``), so an interrupted or killed writer never leaves a partial file under the
final name; while it writes, the destination is locked against a second writer (:mod:`mcsurrogate.files`).

Parquet is read by Arrow from the path itself, not through a Python file object (as ``ak.from_parquet`` does with
fsspec): Arrow then holds no Python buffers, whose release on one of Arrow's threads during interpreter exit
aborted processes (``terminate called without an active exception``, apache/arrow#49942).

>>> import awkward as ak, numpy as np
>>> events = ak.zip({"mu": np.array([10.0, 20.0]),
...                  "photons": ak.Array([[{"pt": 50.0, "eta": 0.1, "phi": 1.0}], []])}, depth_limit=1)
>>> path = write_events(events, "events.root")                # doctest: +SKIP
>>> read_events(f"{path}:events").fields                      # doctest: +SKIP
['mu', 'photons']
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import awkward as ak
import numpy as np

from .errors import InputError
from .files import check_writable, output_lock, publish, refuse_existing, temporary_path
from .records import is_numeric_type

__all__ = [
    "PARQUET_SUFFIXES",
    "ROOT_SUFFIXES",
    "EventWriter",
    "available_columns",
    "count_events",
    "file_format",
    "iterate_events",
    "read_events",
    "split_source",
    "write_events",
]

ROOT_SUFFIXES = (".root",)
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_TREE_CLASSES = ("TTree", "ROOT::RNTuple")
_BRANCH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- paths ---------------------------------------------------------------------------------------------
def _path_argument(value: Any, name: str) -> str | os.PathLike[str]:
    """``value`` if it is a path (``str`` or ``os.PathLike``), else :class:`InputError` naming ``name``."""
    if isinstance(value, str) or (isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)):
        if not os.fspath(value):
            raise InputError(f"{name} is an empty string; expected a file path")
        return value
    raise InputError(f"{name} must be a file path (str or pathlib.Path), got {type(value).__name__} {value!r:.80}")


def _optional_name(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"{name} must be a name (str) or None, got {type(value).__name__} {value!r:.80}")


def _optional_index(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))):
        return None if value is None else int(value)
    raise InputError(f"{name} must be an integer (an entry number) or None, got {type(value).__name__} {value!r:.80}")


def split_source(source: str | os.PathLike[str], tree: str | None = None) -> tuple[Path, str | None]:
    """Split ``"file.root:tree"`` (also ``"dir/file.root:dir/tree"``) into ``(Path, tree)``.

    The split happens at the last ``:`` and only when the part before it ends with ``.root``; an explicit
    ``tree`` wins over the one in the string. Parquet files have no trees (``tree`` stays as given).

    >>> split_source("data/ggH.root:events")
    (PosixPath('data/ggH.root'), 'events')
    >>> split_source("data/ggH.root:events", tree="other")
    (PosixPath('data/ggH.root'), 'other')
    """
    text = os.fspath(_path_argument(source, "source"))
    tree = _optional_name(tree, "tree")
    in_string = None
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(ROOT_SUFFIXES):
        text, in_string = head, (tail or None)
    return Path(text), (tree if tree is not None else in_string)


def file_format(path: str | os.PathLike[str]) -> Literal["root", "parquet"]:
    """``"root"`` or ``"parquet"`` from the file's suffix; anything else raises :class:`InputError`."""
    suffix = Path(path).suffix.lower()
    if suffix in ROOT_SUFFIXES:
        return "root"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    accepted = ", ".join(ROOT_SUFFIXES + PARQUET_SUFFIXES)
    raise InputError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; accepted suffixes: {accepted}")


def _existing_input(source: str | os.PathLike[str], tree: str | None) -> tuple[Path, str | None, str]:
    path, tree = split_source(source, tree)
    fmt = file_format(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    if fmt == "parquet" and tree is not None:
        raise InputError(f"{path} is a Parquet file, which has no trees; drop the tree {tree!r}")
    return path, tree, fmt


def _select(available: Sequence[str], columns: Sequence[str] | None, where: str) -> list[str]:
    if columns is None:
        return list(available)
    if isinstance(columns, str):
        raise InputError(f"columns must be a list of names, got the string {columns!r}")
    if not isinstance(columns, Sequence) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"columns must be a list of column names (str) or None, got {columns!r:.80}")
    wanted = list(dict.fromkeys(columns))
    if not wanted:
        raise InputError("columns=[] selects nothing; pass None to read every column")
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(f"{where}: no column(s) {missing}; columns present: {list(available)}")
    return wanted


# -- ROOT: the logical layout of a tree ----------------------------------------------------------------
@dataclass
class _Field:
    """One logical column of a tree: a plain branch, or a collection zipped from ``<name>_<field>`` branches."""

    name: str
    branches: dict[str, str] = field(default_factory=dict)  # record field -> branch; {"": branch} if plain

    @property
    def zipped(self) -> bool:
        return "" not in self.branches


def _tree_fields(obj: Any) -> list[_Field]:
    """Logical columns of a TTree (counter + ``<name>_<field>`` groups zipped) or an RNTuple (its top fields)."""
    if not hasattr(obj, "branches"):  # RNTuple: collections are stored as such
        return [_Field(k, {"": k}) for k in obj.keys() if "." not in k]  # noqa: SIM118 - iterating an RNTuple yields fields, not names
    names = [b.name for b in obj.branches]
    present = set(names)
    hidden: set[str] = set()  # counters made redundant by zipping (ak.num gives them back)
    groups: dict[str, dict[str, str]] = {}
    member: dict[str, str] = {}
    for b in obj.branches:
        counter = b.count_branch
        if counter is None or not counter.name.startswith("n") or len(counter.name) < 2:
            continue
        stem = counter.name[1:]
        if b.name == stem:
            hidden.add(counter.name)
        elif b.name.startswith(stem + "_") and stem not in present:
            groups.setdefault(stem, {})[b.name[len(stem) + 1 :]] = b.name
            member[b.name] = stem
            hidden.add(counter.name)
    out: list[_Field] = []
    emitted: set[str] = set()
    for name in names:
        stem = member.get(name) or (name[1:] if name in hidden and name[1:] in groups else None)
        if stem is not None:
            if stem not in emitted:
                out.append(_Field(stem, dict(groups[stem])))
                emitted.add(stem)
        elif name not in hidden:
            out.append(_Field(name, {"": name}))
    return out


def _assemble(arrays: ak.Array, fields: Sequence[_Field]) -> ak.Array:
    columns: dict[str, ak.Array] = {}
    for f in fields:
        if f.zipped:
            columns[f.name] = ak.zip({sub: arrays[b] for sub, b in f.branches.items()}, depth_limit=2)
        else:
            columns[f.name] = arrays[f.branches[""]]
    return ak.zip(columns, depth_limit=1)


@contextlib.contextmanager
def _open_root(path: Path) -> Iterator[Any]:
    import uproot

    try:
        handle = uproot.open(path)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable ROOT file ({exc})") from exc
    with handle:
        yield handle


def _resolve_tree(handle: Any, path: Path, tree: str | None) -> tuple[Any, str]:
    classes = handle.classnames(recursive=True, cycle=False)
    trees = [k for k, c in classes.items() if c in _TREE_CLASSES]
    if tree is None:
        if len(trees) == 1:
            tree = trees[0]
        elif not trees:
            held = ", ".join(f"{k} ({c})" for k, c in classes.items()) or "nothing"
            raise InputError(f"{path} holds no TTree or RNTuple; it holds: {held}")
        else:
            raise InputError(f"{path} holds several trees {trees}; choose one with '{path}:TREE' (CLI) or tree=...")
    name = tree.strip("/")
    if name not in trees:
        raise InputError(f"{path}: no tree {tree!r}; trees in the file: {trees or 'none'}")
    return handle[name], name


def _root_selection(obj: Any, columns: Sequence[str] | None, where: str) -> tuple[list[_Field], list[str]]:
    fields = _tree_fields(obj)
    by_name = {f.name: f for f in fields}
    chosen = [by_name[c] for c in _select(list(by_name), columns, where)]
    return chosen, [b for f in chosen for b in f.branches.values()]


# -- Parquet -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _parquet_file(path: Path) -> Iterator[Any]:
    """The open ``pyarrow.parquet.ParquetFile`` of ``path``, read by Arrow's own file system (no Python file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(os.fspath(path))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    with handle:
        yield handle


def _to_awkward(table: Any) -> ak.Array:
    """An Arrow table read from Parquet as awkward records, with what ``ak.to_parquet`` stored restored (record names
    such as vector's ``Momentum4D``, attrs), as ``ak.from_parquet`` returns it."""
    import json

    from awkward._connect import pyarrow as ak_pyarrow  # ak.from_parquet's own conversion, on a native read

    convert = getattr(ak_pyarrow, "convert_native_arrow_table_to_awkward", None)
    if convert is not None:
        table = convert(table)
    metadata = table.schema.metadata or {}
    stored = metadata.get(b"PANDAS_ATTRS", metadata.get(b"AWKWARD_ATTRS"))
    return ak.from_arrow(table, attrs=json.loads(stored) if stored else None)


def _read_parquet(pf: Any, columns: list[str], row_groups: Sequence[int] | None) -> ak.Array:
    """Row groups (``None``: all) of an open Parquet file, with the columns in the order asked for."""
    table = pf.read(columns=columns) if row_groups is None else pf.read_row_groups(list(row_groups), columns=columns)
    arr = _to_awkward(table)
    return arr if arr.fields == columns else arr[columns]


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _rows_per_step(step_size: int | str, bytes_per_row: float) -> int:
    """``step_size`` as a number of rows: an int is rows, a string like ``"100 MB"`` is uncompressed bytes."""
    if isinstance(step_size, str):
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", step_size)
        if not m or m.group(2).lower() not in _UNITS:
            raise InputError(
                f"step_size {step_size!r} is neither a number of events nor a memory size like '100 MB' "
                f"(units: {', '.join(u for u in _UNITS if u)})"
            )
        return max(1, int(float(m.group(1)) * _UNITS[m.group(2).lower()] / max(bytes_per_row, 1.0)))
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
        raise InputError(
            f"step_size must be a positive number of events or a memory size like '100 MB', got {step_size!r}"
        )
    return int(step_size)


# -- reading -------------------------------------------------------------------------------------------
def read_events(
    source: str | os.PathLike[str],
    *,
    tree: str | None = None,
    columns: Sequence[str] | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> ak.Array:
    """Read events ``[entry_start, entry_stop)`` (Python slice rules) from a ROOT or Parquet file.

    ``source`` is a path, or ``"file.root:tree"``; a ROOT file with exactly one TTree/RNTuple needs no tree
    name. ``columns`` names logical columns (``photons``, not ``photons_pt``); ``None`` reads all. Collections
    stored as ``n<name>`` + ``<name>_<field>`` branches come back as lists of records. Bad input (missing file,
    tree or column) raises :class:`InputError` listing what is there.
    """
    path, tree, fmt = _existing_input(source, tree)
    entry_start = _optional_index(entry_start, "entry_start")
    entry_stop = _optional_index(entry_stop, "entry_stop")
    if fmt == "parquet":
        with _parquet_file(path) as pf:
            chosen = _select(pf.schema_arrow.names, columns, str(path))
            start, stop, _ = slice(entry_start, entry_stop).indices(pf.metadata.num_rows)
            sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            groups = [i for i in range(len(sizes)) if offsets[i] < stop and offsets[i + 1] > start]
            if not groups:
                return _read_parquet(pf, chosen, [0] if sizes else None)[:0]
            arr = _read_parquet(pf, chosen, groups)
        first = offsets[groups[0]]
        return arr[start - first : stop - first]
    with _open_root(path) as handle:
        obj, name = _resolve_tree(handle, path, tree)
        fields, branches = _root_selection(obj, columns, f"{path}:{name}")
        arrays = obj.arrays(filter_name=branches, entry_start=entry_start, entry_stop=entry_stop, library="ak")
        return _assemble(arrays, fields)


def iterate_events(
    source: str | os.PathLike[str],
    *,
    tree: str | None = None,
    columns: Sequence[str] | None = None,
    step_size: int | str = 100_000,
) -> Iterator[ak.Array]:
    """Yield the events of a file in chunks of ``step_size`` events (or of about a memory size, ``"100 MB"``).

    The chunks concatenate to :func:`read_events`' result; memory stays bounded by one chunk (ROOT, via
    ``uproot.iterate``) or one chunk plus one Parquet row group. Bad input raises at the call, before iterating.
    """
    path, tree, fmt = _existing_input(source, tree)
    if fmt == "parquet":
        with _parquet_file(path) as pf:
            chosen = _select(pf.schema_arrow.names, columns, str(path))
            meta = pf.metadata
            total_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            step = _rows_per_step(step_size, total_bytes / meta.num_rows if meta.num_rows else 1.0)
            return _iterate_parquet(path, chosen, pf.num_row_groups, step)
    _rows_per_step(step_size, 1.0)  # validates; uproot takes the number or the memory size itself
    with _open_root(path) as handle:
        _, name = _resolve_tree(handle, path, tree)
        _root_selection(handle[name], columns, f"{path}:{name}")
    return _iterate_root(path, name, columns, step_size)


def _iterate_parquet(path: Path, columns: list[str], n_groups: int, step: int) -> Iterator[ak.Array]:
    pending: ak.Array | None = None
    with _parquet_file(path) as pf:
        for i in range(n_groups):
            part = _read_parquet(pf, columns, [i])
            pending = part if pending is None or len(pending) == 0 else ak.concatenate([pending, part])
            while len(pending) >= step:
                yield pending[:step]
                pending = pending[step:]
    if pending is not None and len(pending):
        yield pending


def _iterate_root(path: Path, name: str, columns: Sequence[str] | None, step_size: int | str) -> Iterator[ak.Array]:
    with _open_root(path) as handle:
        obj = handle[name]
        fields, branches = _root_selection(obj, columns, f"{path}:{name}")
        for chunk in obj.iterate(filter_name=branches, step_size=step_size, library="ak"):
            yield _assemble(chunk, fields)


def count_events(source: str | os.PathLike[str], *, tree: str | None = None) -> int:
    """Number of events in the file (from its metadata; no data are read)."""
    path, tree, fmt = _existing_input(source, tree)
    if fmt == "parquet":
        with _parquet_file(path) as pf:
            return int(pf.metadata.num_rows)
    with _open_root(path) as handle:
        obj, _ = _resolve_tree(handle, path, tree)
        return int(obj.num_entries)


def available_columns(source: str | os.PathLike[str], *, tree: str | None = None) -> list[str]:
    """The logical columns :func:`read_events` would return (collections zipped: ``photons``, not ``photons_pt``)."""
    path, tree, fmt = _existing_input(source, tree)
    if fmt == "parquet":
        with _parquet_file(path) as pf:
            return list(pf.schema_arrow.names)
    with _open_root(path) as handle:
        obj, _ = _resolve_tree(handle, path, tree)
        return [f.name for f in _tree_fields(obj)]


# -- writing -------------------------------------------------------------------------------------------
_ROOT_SUPPORTED = (
    "numbers or booleans, lists of numbers, lists of records of numbers, or records of numbers "
    "(write Parquet for anything else)"
)


def _root_branches(chunk: ak.Array) -> dict[str, Any]:
    """The branch dictionary uproot's ``mktree``/``extend`` take, after checking every field fits a TTree."""
    columns: dict[str, Any] = {}
    fields = chunk.fields
    for name in fields:
        if not _BRANCH_NAME.match(name):
            raise InputError(
                f"field {name!r} is not a valid ROOT branch name (letters, digits and _; not first a digit)"
            )
        arr = chunk[name]
        if isinstance(arr.type.content, ak.types.RegularType):
            arr = ak.from_regular(arr, axis=1)
        t = arr.type.content  # parameters kept for the checks (strings are lists of characters)
        arr = ak.without_parameters(arr)
        if isinstance(t, ak.types.OptionType) or (
            isinstance(t, (ak.types.ListType, ak.types.RecordType))
            and any(isinstance(c, ak.types.OptionType) for c in _children(t))
        ):
            raise InputError(
                f"field {name!r} ({chunk[name].type.content}) has missing values (option type), which ROOT cannot "
                "store; fill them (ak.fill_none) or drop them (ak.drop_none) first"
            )
        if is_numeric_type(t, optional=False):
            columns[name] = ak.to_numpy(arr)
            continue
        ok = False
        if isinstance(t, ak.types.ListType) and t.parameter("__array__") not in ("string", "bytestring"):
            inner = t.content
            ok = is_numeric_type(inner, optional=False) or (
                isinstance(inner, ak.types.RecordType)
                and all(is_numeric_type(c, optional=False) for c in inner.contents)
            )
            if ok and f"n{name}" in fields:
                raise InputError(
                    f"field {name!r} is a list: its counter branch n{name} collides with the field n{name}"
                )
            if ok and isinstance(inner, ak.types.RecordType):
                clash = [f"{name}_{s}" for s in inner.fields if f"{name}_{s}" in fields]
                if clash:
                    raise InputError(f"collection {name!r} would be written as branches {clash}, which exist as fields")
        elif isinstance(t, ak.types.RecordType):
            ok = all(is_numeric_type(c, optional=False) for c in t.contents)
        if not ok:
            raise InputError(f"field {name!r} has type {chunk[name].type.content}; ROOT output takes {_ROOT_SUPPORTED}")
        columns[name] = arr
    return columns


def _children(t: ak.types.Type) -> list[ak.types.Type]:
    if isinstance(t, ak.types.RecordType):
        return list(t.contents)
    if isinstance(t, (ak.types.ListType, ak.types.RegularType)):
        return [t.content, *_children(t.content)]
    return []


def _branch_type(value: Any) -> Any:
    return value.dtype if isinstance(value, np.ndarray) else value.type.content


class EventWriter:
    """Write events chunk by chunk to a ROOT or Parquet file, atomically.

    >>> with EventWriter("sample.root", tree="events") as out:   # doctest: +SKIP
    ...     for chunk in chunks:
    ...         out.write(chunk)

    The data go to ``.<name>.tmp-<pid>-<random>`` beside ``dest``; leaving the ``with`` block normally closes
    it, fsyncs it and renames it to ``dest``. An exception (KeyboardInterrupt included) deletes the temporary
    file and leaves ``dest`` untouched; a process killed with SIGKILL, or with SIGTERM outside
    :func:`~mcsurrogate.errors.sigterm_raises` (which the CLI and the analysis scripts use), leaves the temporary
    file (recognisable by its name, and deleted by the next writer of ``dest``) but never a partial ``dest``.

    An existing ``dest`` raises :class:`~mcsurrogate.errors.OutputExistsError` unless ``overwrite=True``: at
    construction, and again at the final rename, which never replaces a file that appeared meanwhile. Inside the
    ``with`` block ``dest`` is locked (:func:`mcsurrogate.files.output_lock`): a second writer of the same ``dest``
    fails when it enters its block. A location that cannot be written (read-only, a file where a directory should
    be) raises :class:`~mcsurrogate.errors.OutputError` at construction. ROOT: the first chunk creates the TTree
    ``tree`` and fixes its branch types; later chunks must have the same types. Parquet: each chunk becomes a row
    group (``tree`` is ignored).
    """

    def __init__(self, dest: str | os.PathLike[str], *, tree: str = "events", overwrite: bool = False) -> None:
        self.dest = Path(_path_argument(dest, "dest"))
        self.format = file_format(self.dest)
        self.tree = tree
        self.overwrite = overwrite
        self.n_events = 0
        self.n_chunks = 0
        if not isinstance(tree, str):
            raise InputError(f"tree must be a name (str), got {type(tree).__name__} {tree!r:.80}")
        if self.format == "root" and (not tree or not all(_BRANCH_NAME.match(p) for p in tree.split("/"))):
            raise InputError(
                f"tree name {tree!r} is not valid for ROOT (letters, digits and _, '/' between directories)"
            )
        self._check_dest()
        self._tmp: Path | None = None
        self._lock: contextlib.ExitStack | None = None
        self._file: Any = None
        self._writer: Any = None
        self._types: dict[str, str] | None = None
        self._schema: Any = None

    def _check_dest(self) -> None:
        if self.dest.is_dir():
            raise InputError(f"{self.dest} is a directory; give a file name ending in .root or .parquet")
        refuse_existing(self.dest, self.overwrite, "choose another name or pass overwrite=True (--overwrite)")
        check_writable(self.dest)

    def __enter__(self) -> EventWriter:  # noqa: PYI034 - typing.Self needs Python 3.11
        with contextlib.ExitStack() as stack:
            stack.enter_context(output_lock(self.dest, purpose=f"writing {self.dest.name}"))
            self._check_dest()  # again, now that no other writer can interfere
            self._tmp = temporary_path(self.dest)
            self._lock = stack.pop_all()
        return self

    @property
    def temporary(self) -> Path | None:
        """The temporary file being written (``None`` outside the ``with`` block)."""
        return self._tmp

    def write(self, chunk: ak.Array) -> None:
        """Append ``chunk`` (a record array, one record per event) to the output."""
        if self._tmp is None:
            raise RuntimeError("EventWriter.write must be called inside a 'with EventWriter(...)' block")
        if (
            not isinstance(chunk, ak.Array)
            or not isinstance(chunk.type.content, ak.types.RecordType)
            or not chunk.fields
        ):
            shown = chunk.type if isinstance(chunk, ak.Array) else type(chunk).__name__
            raise InputError(f"write takes an awkward record array (one record per event), got {shown}")
        if self.format == "root":
            self._write_root(chunk)
        else:
            self._write_parquet(chunk)
        self.n_events += len(chunk)
        self.n_chunks += 1

    def _write_root(self, chunk: ak.Array) -> None:
        import uproot

        branches = _root_branches(chunk)
        types = {k: str(_branch_type(v)) for k, v in branches.items()}
        if self._types is None:
            self._file = uproot.recreate(self._tmp)
            self._writer = self._file.mktree(self.tree, {k: _branch_type(v) for k, v in branches.items()})
            self._types = types
        elif types != self._types:
            raise InputError(
                f"chunk {self.n_chunks + 1} does not match the first chunk's fields: {_diff(self._types, types)}"
            )
        self._writer.extend(branches)

    def _write_parquet(self, chunk: ak.Array) -> None:
        import pyarrow.parquet as pq

        table = ak.to_arrow_table(chunk, extensionarray=True)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd", use_dictionary=False)
            self._schema = table.schema
        elif not table.schema.equals(self._schema, check_metadata=False):
            first = {f.name: str(f.type) for f in self._schema}
            now = {f.name: str(f.type) for f in table.schema}
            raise InputError(f"chunk {self.n_chunks + 1} does not match the first chunk's fields: {_diff(first, now)}")
        self._writer.write_table(table)

    def _close_handles(self) -> None:
        writer, self._writer = self._writer, None
        handle, self._file = self._file, None
        try:
            if self.format == "parquet" and writer is not None:
                writer.close()
        finally:
            if handle is not None:
                handle.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tmp, self._tmp = self._tmp, None
        lock, self._lock = self._lock, None
        if tmp is None:
            return
        try:
            if exc_type is not None:
                with contextlib.suppress(Exception):  # the original exception is the one to report
                    self._close_handles()
                return
            self._close_handles()
            if self.n_chunks == 0:
                raise InputError(f"no events were given, so {self.dest} was not written (write at least one chunk)")
            publish(tmp, self.dest, overwrite=self.overwrite)
        finally:
            tmp.unlink(missing_ok=True)
            if lock is not None:
                lock.close()


def _diff(first: dict[str, str], now: dict[str, str]) -> str:
    parts = [
        f"{k}: {first.get(k, 'absent')} then {now.get(k, 'absent')}"
        for k in dict.fromkeys([*first, *now])
        if first.get(k) != now.get(k)
    ]
    return "; ".join(parts)


def write_events(
    events: ak.Array, dest: str | os.PathLike[str], *, tree: str = "events", overwrite: bool = False
) -> Path:
    """Write ``events`` to a ROOT (TTree ``tree``) or Parquet file atomically; returns the path written.

    Lists of records become a counter branch ``n<name>`` and branches ``<name>_<field>`` in ROOT, which
    :func:`read_events` zips back. An existing ``dest`` raises :class:`OutputExistsError` unless ``overwrite``.
    """
    if not isinstance(events, ak.Array):
        raise InputError(f"events must be an awkward Array of records (one per event), got {type(events).__name__}")
    with EventWriter(dest, tree=tree, overwrite=overwrite) as writer:
        writer.write(events)
    return writer.dest
