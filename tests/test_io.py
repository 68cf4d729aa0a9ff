"""Event I/O on real ROOT (uproot) and Parquet files: round trips, chunking, errors, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mcsurrogate.errors import InputError, OutputExistsError
from mcsurrogate.io import (
    EventWriter,
    available_columns,
    count_events,
    file_format,
    iterate_events,
    read_events,
    split_source,
    write_events,
)


def make_events(n: int = 500, seed: int = 0) -> ak.Array:
    """Flat float64/int fields and a jagged photon collection (0-3 photons per event, int charge)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n)
    total = int(counts.sum())
    photons = ak.unflatten(
        ak.zip(
            {
                "pt": rng.uniform(20, 200, total),
                "eta": rng.uniform(-2.5, 2.5, total),
                "phi": rng.uniform(-np.pi, np.pi, total),
                "conv": rng.integers(0, 3, total),
            }
        ),
        counts,
    )
    return ak.zip(
        {"mu": rng.uniform(0, 40, n), "nvtx": rng.integers(0, 60, n).astype(np.int32), "photons": photons},
        depth_limit=1,
    )


@pytest.fixture(params=["root", "parquet"])
def suffix(request: pytest.FixtureRequest) -> str:
    return request.param


def temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp-*"))


def test_split_source() -> None:
    assert split_source("f.root:events") == (Path("f.root"), "events")
    assert split_source("dir/f.root:dir/tree") == (Path("dir/f.root"), "dir/tree")
    assert split_source("f.root:events", tree="other") == (Path("f.root"), "other")
    assert split_source("f.root") == (Path("f.root"), None)
    assert split_source("f.parquet") == (Path("f.parquet"), None)
    assert split_source(Path("d/f.ROOT:t")) == (Path("d/f.ROOT"), "t")
    assert split_source("odd:name/f.root") == (Path("odd:name/f.root"), None)


def test_file_format() -> None:
    assert file_format("a.root") == "root"
    for name in ("a.parquet", "a.parq", "a.PQ"):
        assert file_format(name) == "parquet"
    with pytest.raises(InputError, match=r"a\.csv.*\.root, \.parquet, \.parq, \.pq"):
        file_format("a.csv")


def test_round_trip_flat_and_jagged(tmp_path: Path, suffix: str) -> None:
    events = make_events()
    path = write_events(events, tmp_path / f"ev.{suffix}")
    back = read_events(path)
    assert back.fields == events.fields
    assert str(back.type) == str(events.type)  # same layout: float64, int32, var * {float64 ×3, int64}
    assert ak.array_equal(back, events)
    assert count_events(path) == len(events)
    assert available_columns(path) == ["mu", "nvtx", "photons"]
    part = read_events(path, columns=["photons", "mu"], entry_start=10, entry_stop=30)
    assert part.fields == ["photons", "mu"]
    assert ak.array_equal(part, events[10:30][["photons", "mu"]])
    assert ak.array_equal(read_events(path, entry_start=-7), events[-7:])


def test_root_layout_is_counter_plus_branches(tmp_path: Path) -> None:
    """Collections are stored the way other ROOT tools expect: nphotons + photons_<field>; counters hidden on read."""
    path = write_events(make_events(50), tmp_path / "ev.root", tree="events")
    with uproot.open(path) as f:
        tree = f["events"]
        assert tree.keys() == ["mu", "nvtx", "nphotons", "photons_pt", "photons_eta", "photons_phi", "photons_conv"]
        assert tree["photons_pt"].count_branch.name == "nphotons"


def test_reads_nanoaod_style_and_plain_jagged(tmp_path: Path) -> None:
    """Counter + <Name>_<field> branches written by someone else are zipped; a plain jagged branch stays a list."""
    path = tmp_path / "nano.root"
    photons = ak.Array([[{"pt": 30.0, "eta": 0.1}], [], [{"pt": 40.0, "eta": -1.0}, {"pt": 35.0, "eta": 2.0}]])
    with uproot.recreate(path) as f:
        f.mktree("Events", {"Photon": photons.type.content, "j": ak.Array([[1.0]]).type.content, "run": np.int64})
        f["Events"].extend({"Photon": photons, "j": ak.Array([[1.0, 2.0], [], [3.0]]), "run": np.arange(3)})
    back = read_events(path)
    assert back.fields == ["Photon", "j", "run"]
    assert back.Photon.fields == ["pt", "eta"]
    assert ak.to_list(ak.num(back.Photon)) == [1, 0, 2]
    assert ak.to_list(back.j) == [[1.0, 2.0], [], [3.0]]


def test_tree_selection(tmp_path: Path) -> None:
    path = tmp_path / "multi.root"
    with uproot.recreate(path) as f:
        f.mktree("signal", {"x": np.float64}).extend({"x": np.arange(3.0)})
        f.mktree("dir/background", {"x": np.float64}).extend({"x": np.arange(5.0)})
    assert len(read_events(f"{path}:signal")) == 3
    assert len(read_events(f"{path}:dir/background")) == 5
    assert len(read_events(path, tree="dir/background")) == 5
    assert count_events(f"{path}:signal", tree="dir/background") == 5  # explicit tree wins
    with pytest.raises(InputError, match=r"several trees.*'signal'.*'dir/background'"):
        read_events(path)
    with pytest.raises(InputError, match=r"no tree 'nope'; trees in the file: \['signal', 'dir/background'\]"):
        read_events(f"{path}:nope")


def test_file_without_tree(tmp_path: Path) -> None:
    path = tmp_path / "hist.root"
    with uproot.recreate(path) as f:
        f["h"] = np.histogram(np.arange(5.0))
    with pytest.raises(InputError, match=r"holds no TTree or RNTuple; it holds: h \(TH1D\)"):
        read_events(path)


def test_reads_rntuple(tmp_path: Path) -> None:
    """uproot >= 5.4 writes RNTuples for ``file[name] = array``; those read the same way."""
    events = make_events(40)
    path = tmp_path / "rn.root"
    with uproot.recreate(path) as f:
        f["events"] = events
    assert ak.array_equal(read_events(path), events)
    assert available_columns(path) == events.fields
    assert count_events(path) == 40


def test_bad_inputs_name_the_problem(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(InputError, match=r"missing\.root: no such file"):
        read_events(tmp_path / "missing.root")
    with pytest.raises(InputError, match=r"unknown file type '.txt'"):
        read_events(tmp_path / "events.txt")
    path = write_events(make_events(20), tmp_path / f"ev.{suffix}")
    with pytest.raises(InputError, match=r"no column\(s\) \['m_gg'\]; columns present: \['mu', 'nvtx', 'photons'\]"):
        read_events(path, columns=["mu", "m_gg"])
    with pytest.raises(InputError, match="list of names"):
        read_events(path, columns="mu")
    garbage = tmp_path / f"garbage.{suffix}"
    garbage.write_bytes(b"not a real file" * 10)
    with pytest.raises(InputError, match=f"garbage.{suffix}: not a readable"):
        read_events(garbage)


WRONG_TYPES = {
    "read_events(123)": (lambda p: read_events(123), r"source must be a file path \(str or pathlib.Path\), got int 123"),
    "read_events(None)": (lambda p: read_events(None), r"source must be a file path.*got NoneType"),
    "read_events(b'...')": (lambda p: read_events(os.fsencode(p)), r"source must be a file path.*got bytes"),
    "read_events('')": (lambda p: read_events(""), r"source is an empty string"),
    "read_events(tree=5)": (lambda p: read_events(p, tree=5), r"tree must be a name \(str\) or None, got int"),
    "read_events(columns=[1])": (lambda p: read_events(p, columns=[1]), r"columns must be a list of column names"),
    "read_events(entry_stop='3')": (lambda p: read_events(p, entry_stop="3"), r"entry_stop must be an integer"),
    "read_events(entry_start=1.5)": (lambda p: read_events(p, entry_start=1.5), r"entry_start must be an integer"),
    "read_events(entry_stop=True)": (lambda p: read_events(p, entry_stop=True), r"entry_stop must be an integer"),
    "iterate_events([p])": (lambda p: iterate_events([p]), r"source must be a file path.*got list"),
    "count_events(3.0)": (lambda p: count_events(3.0), r"source must be a file path.*got float"),
    "available_columns(p, tree=[])": (lambda p: available_columns(p, tree=[]), r"tree must be a name"),
    "write_events(dest=123)": (lambda p: write_events(make_events(3), 123), r"dest must be a file path.*got int"),
    "write_events(dict)": (lambda p: write_events({"a": [1.0]}, p.with_name("x.parquet")), r"events must be an awk"),
    "EventWriter(tree=1)": (lambda p: EventWriter(p.with_name("x.root"), tree=1), r"tree must be a name \(str\)"),
}  # fmt: skip


@pytest.mark.parametrize("call", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_argument_types_name_the_parameter(tmp_path: Path, call: tuple) -> None:
    path = write_events(make_events(10), tmp_path / "ev.parquet")
    function, message = call
    with pytest.raises(InputError, match=message):
        function(path)


def test_parquet_reads_as_awkward_writes_it(tmp_path: Path) -> None:
    """Arrow reads the file itself (no Python file object, see the module notes) with the same result as
    ak.from_parquet: record names (vector's Momentum4D), parameters, attrs and row-group slicing."""
    import vector

    vector.register_awkward()
    events = make_events(300)
    photons = ak.zip({"pt": events.photons.pt, "eta": events.photons.eta, "phi": events.photons.phi,
                      "mass": 0.0 * events.photons.pt}, with_name="Momentum4D")  # fmt: skip
    events = ak.with_field(events, photons, "photons")
    events = ak.Array(events, attrs={"sample": "ggH"})
    ak.to_parquet(events, tmp_path / "ev.parquet", row_group_size=100)
    expected = ak.from_parquet(tmp_path / "ev.parquet")
    got = read_events(tmp_path / "ev.parquet")
    assert got.type == expected.type and ak.to_list(got) == ak.to_list(expected) and got.attrs == {"sample": "ggH"}
    assert str(got.photons.type.content.content).startswith("Momentum4D")
    part = read_events(tmp_path / "ev.parquet", columns=["photons", "mu"], entry_start=150, entry_stop=250)
    assert part.fields == ["photons", "mu"] and ak.to_list(part) == ak.to_list(expected[["photons", "mu"]][150:250])
    assert read_events(tmp_path / "ev.parquet", entry_start=400).type.content == expected.type.content


def test_parquet_has_no_tree(tmp_path: Path) -> None:
    path = write_events(make_events(10), tmp_path / "ev.parquet")
    with pytest.raises(InputError, match="Parquet file, which has no trees"):
        read_events(path, tree="events")


def test_chunked_iteration_concatenates_to_whole(tmp_path: Path, suffix: str) -> None:
    events = make_events(1000)
    path = tmp_path / f"ev.{suffix}"
    with EventWriter(path) as out:  # several ROOT baskets / Parquet row groups of uneven size
        for start in range(0, 1000, 170):
            out.write(events[start : start + 170])
    chunks = list(iterate_events(path, step_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert ak.array_equal(ak.concatenate(chunks), events)
    photons_only = list(iterate_events(path, columns=["photons"], step_size=450))
    assert ak.array_equal(ak.concatenate(photons_only), events[["photons"]])
    by_memory = list(iterate_events(path, step_size="8 kB"))
    assert len(by_memory) > 1
    assert ak.array_equal(ak.concatenate(by_memory), events)
    with pytest.raises(InputError, match="step_size"):
        iterate_events(path, step_size=0)
    with pytest.raises(InputError, match="no column"):  # raised at the call, not at the first chunk
        iterate_events(path, columns=["nope"])
    with pytest.raises(InputError, match="no such file"):
        iterate_events(tmp_path / f"missing.{suffix}")


def test_existing_output_needs_overwrite(tmp_path: Path, suffix: str) -> None:
    dest = write_events(make_events(10), tmp_path / f"ev.{suffix}")
    with pytest.raises(OutputExistsError, match=f"ev.{suffix} exists already.*overwrite=True"):
        write_events(make_events(20), dest)
    assert count_events(dest) == 10
    write_events(make_events(20), dest, overwrite=True)
    assert count_events(dest) == 20
    assert temporaries(tmp_path) == []
    umask = os.umask(0o022)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not left private (0600) by mkstemp


def test_writer_leaves_nothing_on_exception(tmp_path: Path, suffix: str) -> None:
    dest = tmp_path / f"ev.{suffix}"
    events = make_events(100)
    with pytest.raises(RuntimeError, match="boom"), EventWriter(dest) as out:
        out.write(events[:50])
        assert out.temporary is not None and out.temporary.exists()
        raise RuntimeError("boom")
    assert not dest.exists()
    assert temporaries(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), EventWriter(dest) as out:
        out.write(events[:50])
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_mismatched_chunks_and_bad_types(tmp_path: Path, suffix: str) -> None:
    dest = tmp_path / f"ev.{suffix}"
    events = make_events(100)
    with pytest.raises(InputError, match=r"chunk 2 does not match.*mu"), EventWriter(dest) as out:
        out.write(events[:50])
        out.write(ak.with_field(events[50:], ak.values_astype(events[50:].mu, np.float32), "mu"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="record array"), EventWriter(dest) as out:
        out.write(events.photons)
    with pytest.raises(InputError, match="no events were given"), EventWriter(dest):
        pass
    assert list(tmp_path.iterdir()) == []


def test_root_output_rejects_what_root_cannot_hold(tmp_path: Path) -> None:
    dest = tmp_path / "ev.root"
    with pytest.raises(InputError, match=r"field 'label' has type string.*Parquet"):
        write_events(ak.zip({"x": np.arange(3.0), "label": ["a", "b", "c"]}), dest)
    with pytest.raises(InputError, match=r"field 'x'.*missing values.*fill_none"):
        write_events(ak.zip({"x": ak.Array([1.0, None, 3.0])}), dest)
    assert list(tmp_path.iterdir()) == []
    # ... which Parquet takes
    events = ak.zip({"x": ak.Array([1.0, None, 3.0]), "label": ["a", "b", "c"]})
    assert ak.to_list(read_events(write_events(events, tmp_path / "ev.parquet"))) == ak.to_list(events)


def test_regular_momentum4d_lists_round_trip(tmp_path: Path) -> None:
    """What a surrogate samples (regular lists of vector records) writes to ROOT and reads back as lists."""
    import vector

    vector.register_awkward()
    pt = np.array([[50.0, 40.0], [70.0, 30.0]])
    photons = ak.zip({"pt": pt, "eta": pt * 0.01, "phi": pt * 0.02, "mass": np.zeros_like(pt)}, with_name="Momentum4D")
    events = ak.zip({"mu": np.array([1.0, 2.0]), "photons": photons}, depth_limit=1)
    back = read_events(write_events(events, tmp_path / "s.root"))
    assert ak.to_list(back) == ak.to_list(events)
    back_pq = read_events(write_events(events, tmp_path / "s.parquet"))
    assert ak.to_list(back_pq) == ak.to_list(events)
    assert float((back_pq.photons[:, 0] + back_pq.photons[:, 1]).mass[0]) > 0  # vector behaviour survives Parquet


CHILD = textwrap.dedent(
    """
    import sys
    import awkward as ak, numpy as np
    from mcsurrogate.io import EventWriter
    n = 2000
    chunk = ak.zip({"x": np.arange(n, dtype=np.float64),
                    "photons": ak.unflatten(ak.zip({"pt": np.ones(2 * n), "eta": np.zeros(2 * n)}), np.full(n, 2))},
                   depth_limit=1)
    with EventWriter(sys.argv[1], overwrite=True) as out:
        for i in range(1_000_000):
            out.write(chunk)
            print(out.temporary, flush=True)
    """
)


def test_sigkill_mid_write_leaves_no_partial_output(tmp_path: Path, suffix: str) -> None:
    dest = tmp_path / f"ev.{suffix}"
    before = make_events(30)
    write_events(before, dest)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        temp = Path(child.stdout.readline().strip())  # the first chunk is in the temporary file
        assert temp.parent == tmp_path and temp.name.startswith(f".ev.{suffix}.tmp-{child.pid}-")
        assert temp.stat().st_size > 0
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert ak.array_equal(read_events(dest), before)  # previous content intact
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [dest.name]
    assert temporaries(tmp_path) == [temp]  # the leftover is recognisable by its name


def test_sigterm_under_sigterm_raises_deletes_the_partial_output(tmp_path: Path) -> None:
    dest = tmp_path / "ev.parquet"
    before = make_events(30)
    write_events(before, dest)
    script = "from mcsurrogate.errors import sigterm_raises\nwith sigterm_raises():\n" + textwrap.indent(CHILD, "    ")
    child = subprocess.Popen([sys.executable, "-c", script, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        temp = Path(child.stdout.readline().strip())
        assert temp.stat().st_size > 0
        child.send_signal(signal.SIGTERM)
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == 143  # quiet exit with 128 + SIGTERM, after the with blocks unwound
    assert temporaries(tmp_path) == []
    assert ak.array_equal(read_events(dest), before)


def test_sigkill_without_previous_output(tmp_path: Path) -> None:
    dest = tmp_path / "fresh.root"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert not dest.exists()
