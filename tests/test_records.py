"""Event records <-> feature matrices, vector behaviours and derived observables."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from mcsurrogate.errors import InputError
from mcsurrogate.records import (
    DerivedObservable,
    FeatureSpec,
    FlattenReport,
    ObjectSlots,
    _leading_block,
    check_finite,
    flatten_objects,
    from_matrix,
    object_blocks,
    objects_from_blocks,
    to_matrix,
    to_objects,
    with_objects,
)


def photon_events(n: int = 400, seed: int = 1, dtype: type = np.float64) -> ak.Array:
    """1-4 photons per event (massless, pt-ordered as stored), a pile-up condition and a flat label."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, n)
    total = int(counts.sum())
    pt = ak.sort(ak.unflatten(rng.uniform(20, 200, total).astype(dtype), counts), axis=1, ascending=False)
    photons = ak.zip(
        {
            "pt": pt,
            "eta": ak.unflatten(rng.uniform(-2.5, 2.5, total).astype(dtype), counts),
            "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, total).astype(dtype), counts),
        }
    )
    return ak.zip({"mu": rng.uniform(0, 40, n).astype(dtype), "photons": photons}, depth_limit=1)


def hand_mass(pt1, eta1, phi1, pt2, eta2, phi2):
    """Invariant mass of two massless objects: m^2 = 2 pt1 pt2 (cosh(deta) - cos(dphi))."""
    return np.sqrt(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)))


def test_slot_columns_and_prefix() -> None:
    slots = ObjectSlots("photons", 2)
    assert slots.columns() == ["photon1_pt", "photon1_eta", "photon1_phi", "photon2_pt", "photon2_eta", "photon2_phi"]
    assert ObjectSlots("jets", 1, fields=("pt",), prefix="j").columns() == ["j1_pt"]
    assert ObjectSlots("met", 1, fields=["pt"]).columns() == ["met1_pt"]
    assert ObjectSlots.from_dict(json.loads(json.dumps(slots.to_dict()))) == slots
    with pytest.raises(InputError, match="positive number"):
        ObjectSlots("photons", 0)
    with pytest.raises(InputError, match=r"unknown key\(s\) \['nn'\]; valid keys"):
        ObjectSlots.from_dict({"collection": "photons", "nn": 2})


def test_flatten_to_objects_round_trip_and_drop_count() -> None:
    events = photon_events()
    n_counts = ak.to_numpy(ak.num(events.photons))
    slots = ObjectSlots("photons", 2)
    flat, dropped = flatten_objects(events, slots)
    assert dropped == int((n_counts < 2).sum()) > 0
    assert len(flat) == int((n_counts >= 2).sum())
    assert flat.fields == slots.columns()
    kept = events[n_counts >= 2]
    np.testing.assert_array_equal(ak.to_numpy(flat.photon2_eta), ak.to_numpy(kept.photons.eta[:, 1]))
    photons = to_objects(flat, slots)
    assert (
        str(photons.type) == f"{len(flat)} * var * Momentum4D[pt: float64, eta: float64, phi: float64, mass: float64]"
    )
    assert ak.all(ak.num(photons) == 2)
    for field in ("pt", "eta", "phi"):
        assert ak.array_equal(photons[field], kept.photons[field][:, :2])
    assert ak.all(photons.mass == 0)
    with pytest.raises(
        InputError, match=rf"{dropped} of {len(events)} events have too few objects.*fewer than 2 photons"
    ):
        flatten_objects(events, slots, too_few="raise")
    four, dropped4 = flatten_objects(events, ObjectSlots("photons", 4))
    assert dropped4 == int((n_counts < 4).sum())
    assert len(four) + dropped4 == len(events)


def _layouts() -> dict[str, ak.Array]:
    events = photon_events(300, seed=7)
    with_int = ak.with_field(events, ak.values_astype(events.photons.pt, np.int32), ["photons", "n_cells"])
    with_none = ak.with_field(
        events, ak.mask(events.photons.eta, events.photons.pt > 60, valid_when=True), ["photons", "eta"]
    )
    return {
        "plain": events,
        "masked events": events[ak.num(events.photons) != 3],  # a ListArray: starts not from offsets
        "sliced": events[57:],  # lists starting away from zero
        "float32": photon_events(300, seed=7, dtype=np.float32),
        "int field": with_int,
        "missing values": with_none,  # an option type: the general path, NaN-free because None is kept as None
        "from a list of dicts": ak.Array(ak.to_list(events[:40])),
    }


@pytest.mark.parametrize("name", list(_layouts()))
def test_flattening_reads_every_layout_like_slot_by_slot(name: str) -> None:
    """The direct read from the lists' starts and the general path give the same columns as indexing slot by slot."""
    events = _layouts()[name]
    fields = ("pt", "eta", "phi", "n_cells") if "n_cells" in events.photons.fields else ("pt", "eta", "phi")
    slots = ObjectSlots("photons", 2, fields=fields)
    flat, _ = flatten_objects(events, slots)
    kept = events[ak.num(events.photons) >= 2]
    for f in fields:
        fast = _leading_block(kept.photons[f], 2)
        assert (fast is None) == (name == "missing values" and f == "eta")
        for i in range(2):
            expected = ak.to_numpy(ak.fill_none(kept.photons[f][:, i], np.nan)).astype(np.float64)
            got = ak.to_numpy(flat[slots.column(i + 1, f)])
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, expected)


def test_object_blocks_round_trip_through_objects_from_blocks() -> None:
    events = photon_events(200, seed=3)
    blocks, dropped = object_blocks(events, ObjectSlots("photons", 2))
    kept = events[ak.num(events.photons) >= 2]
    assert dropped == len(events) - len(kept) and set(blocks) == {"pt", "eta", "phi"}
    assert blocks["eta"].shape == (len(kept), 2) and blocks["eta"].dtype == np.float64
    np.testing.assert_array_equal(blocks["phi"][:, 1], ak.to_numpy(kept.photons.phi[:, 1]))
    objects = objects_from_blocks(blocks | {"iso": np.ones((len(kept), 2))})
    assert objects.fields == ["pt", "eta", "phi", "mass", "iso"] and ak.all(objects.mass == 0)
    assert ak.array_equal(objects.pt, kept.photons.pt[:, :2])
    pair = objects[:, 0] + objects[:, 1]  # vector behaviours
    np.testing.assert_allclose(ak.to_numpy(pair.mass), hand_mass(*(blocks[f][:, i] for i in (0, 1) for f in blocks)))
    heavy = objects_from_blocks(blocks, mass=4.18)
    assert ak.all(heavy.mass == 4.18) and len(objects_from_blocks({f: np.zeros((0, 3)) for f in blocks})) == 0
    assert ak.to_list(ak.num(objects_from_blocks({f: np.zeros((4, 0)) for f in blocks}))) == [0, 0, 0, 0]
    with pytest.raises(InputError, match=r"needs the fields \['pt', 'eta', 'phi'\]; missing \['phi'\]"):
        objects_from_blocks({"pt": blocks["pt"], "eta": blocks["eta"]})
    with pytest.raises(InputError, match=r"shape \(events, n\).*\['eta'\]"):
        objects_from_blocks(blocks | {"eta": blocks["eta"][:, :1]})
    with pytest.raises(InputError, match="too few objects"):
        object_blocks(events, ObjectSlots("photons", 2), too_few="raise")


def test_sort_by_orders_descending() -> None:
    events = ak.Array(
        [
            {
                "photons": [
                    {"pt": 30.0, "eta": 1.0, "phi": 0.0},
                    {"pt": 80.0, "eta": -1.0, "phi": 2.0},
                    {"pt": 50.0, "eta": 0.0, "phi": 1.0},
                ]
            }
        ]
    )
    flat, _ = flatten_objects(events, ObjectSlots("photons", 2, sort_by="pt"))
    assert ak.to_list(flat) == [
        {
            "photon1_pt": 80.0,
            "photon1_eta": -1.0,
            "photon1_phi": 2.0,
            "photon2_pt": 50.0,
            "photon2_eta": 0.0,
            "photon2_phi": 1.0,
        }
    ]
    stored, _ = flatten_objects(events, ObjectSlots("photons", 1))
    assert ak.to_list(stored.photon1_pt) == [30.0]


def test_diphoton_mass_matches_hand_formula() -> None:
    events = photon_events()
    kept = events[ak.num(events.photons) >= 2]
    p = kept.photons
    expected = hand_mass(*(ak.to_numpy(p[f][:, i]) for i in (0, 1) for f in ("pt", "eta", "phi")))
    m_gg = DerivedObservable("m_gg", "pair_mass", "photons").compute(kept)
    assert m_gg.dtype == np.float64
    np.testing.assert_allclose(m_gg, expected, rtol=1e-10)
    # the same through the rebuilt objects: generated samples behave like MC
    flat, _ = flatten_objects(events, ObjectSlots("photons", 2))
    photons = to_objects(flat, ObjectSlots("photons", 2))
    np.testing.assert_allclose(ak.to_numpy((photons[:, 0] + photons[:, 1]).mass), expected, rtol=1e-10)
    ev = with_objects(flat, "photons", photons)
    np.testing.assert_allclose(ak.to_numpy((ev.photons[:, 0] + ev.photons[:, 1]).mass), expected, rtol=1e-10)


def test_other_derived_kinds() -> None:
    events = photon_events(50)
    kept = events[ak.num(events.photons) >= 3]
    a, b = kept.photons[:, 0], kept.photons[:, 2]
    px = a.pt * np.cos(a.phi) + b.pt * np.cos(b.phi)
    py = a.pt * np.sin(a.phi) + b.pt * np.sin(b.phi)
    dphi = (a.phi - b.phi + np.pi) % (2 * np.pi) - np.pi
    expected = {
        "pair_pt": np.hypot(px, py),
        "delta_phi": dphi,
        "delta_r": np.hypot(a.eta - b.eta, dphi),
    }
    for kind, want in expected.items():
        got = DerivedObservable(kind, kind, "photons", indices=(0, 2)).compute(kept)
        np.testing.assert_allclose(got, ak.to_numpy(want), rtol=1e-9, atol=1e-12)
    pz = a.pt * np.sinh(a.eta) + b.pt * np.sinh(b.eta)
    e = a.pt * np.cosh(a.eta) + b.pt * np.cosh(b.eta)
    np.testing.assert_allclose(
        DerivedObservable("y", "pair_rapidity", "photons", (0, 2)).compute(kept),
        ak.to_numpy(0.5 * np.log((e + pz) / (e - pz))),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        DerivedObservable("eta", "pair_eta", "photons", (0, 2)).compute(kept),
        ak.to_numpy(np.arcsinh(pz / np.hypot(px, py))),
        rtol=1e-9,
    )
    with pytest.raises(InputError, match=r"unknown kind 'mass'; kinds: \['pair_mass'"):
        DerivedObservable("m", "mass", "photons")
    with pytest.raises(InputError, match="two distinct"):
        DerivedObservable("m", "pair_mass", "photons", (1, 1))
    with pytest.raises(InputError, match=r"events have fewer than 3 photons"):
        DerivedObservable("x", "delta_r", "photons", (0, 2)).compute(events)


def test_feature_spec_matrices_and_report() -> None:
    events = photon_events()
    spec = FeatureSpec(
        targets=["photon1_pt", "photon2_pt"],
        conditions=["mu", "m_gg"],
        objects=[ObjectSlots("photons", 2)],
        derived=[DerivedObservable("m_gg", "pair_mass", "photons"), DerivedObservable("dr", "delta_r", "photons")],
    )
    x, c, report = spec.matrices(events)
    n2 = int(ak.sum(ak.num(events.photons) >= 2))
    assert isinstance(report, FlattenReport)
    assert report.to_dict() == {
        "n_input": len(events),
        "n_kept": n2,
        "dropped_too_few_objects": len(events) - n2,
        "dropped_nonfinite": {},
    }
    assert x.shape == (n2, 2) and c is not None and c.shape == (n2, 2)
    assert x.dtype == c.dtype == np.float64 and x.flags.c_contiguous
    kept = events[ak.num(events.photons) >= 2]
    np.testing.assert_array_equal(c[:, 0], ak.to_numpy(kept.mu))
    flat, _ = spec.flatten(events)
    assert flat.fields[:4] == ["photon1_pt", "photon2_pt", "mu", "m_gg"]
    assert set(flat.fields) == {*spec.objects[0].columns(), "mu", "m_gg", "dr"}
    x_only, none, _ = FeatureSpec(targets=["mu"]).matrices(events)
    assert none is None and x_only.shape == (len(events), 1)
    with pytest.raises(InputError, match=r"fewer than 2 photons"):
        FeatureSpec(targets=["m_gg"], derived=spec.derived, too_few_objects="raise").flatten(events)


def test_feature_spec_dict_round_trip() -> None:
    spec = FeatureSpec(
        targets=["photon1_pt", "photon1_eta"],
        conditions=["mu"],
        objects=[ObjectSlots("photons", 2, sort_by="pt")],
        derived=[DerivedObservable("m_gg", "pair_mass", "photons", (0, 1))],
        too_few_objects="raise",
    )
    data = json.loads(json.dumps(spec.to_dict()))
    assert FeatureSpec.from_dict(data) == spec
    assert FeatureSpec.from_dict({"targets": ["a"]}) == FeatureSpec(targets=["a"])
    with pytest.raises(InputError, match=r"unknown key\(s\) \['target'\]"):
        FeatureSpec.from_dict({"target": ["a"]})
    with pytest.raises(InputError, match="more than once"):
        FeatureSpec(targets=["a", "a"])
    with pytest.raises(
        InputError, match=r"\['photon1_eta', 'photon1_phi', 'photon1_pt'\] are produced by more than one"
    ):
        FeatureSpec(targets=["a"], objects=[ObjectSlots("photons", 1), ObjectSlots("photons", 2)])


def test_spec_skips_collections_it_does_not_need() -> None:
    """Conditions-only events (no reco collection) flatten when no needed column comes from that collection."""
    spec = FeatureSpec(targets=["mu"], objects=[ObjectSlots("reco_photons", 2)])
    flat, report = spec.flatten(ak.zip({"mu": np.arange(4.0)}))
    assert flat.fields == ["mu"] and report.n_kept == 4
    with pytest.raises(InputError, match=r"no collection 'photons'; fields present: \['mu'\]"):
        FeatureSpec(targets=["photon1_pt"], objects=[ObjectSlots("photons", 1)]).flatten(ak.zip({"mu": np.arange(4.0)}))


def test_to_matrix_errors_name_the_column() -> None:
    events = ak.zip(
        {
            "x": np.arange(3.0),
            "n": np.arange(3),
            "ok": np.array([True, False, True]),
            "label": ["a", "b", "c"],
            "jagged": ak.Array([[1.0], [], [2.0, 3.0]]),
        },
        depth_limit=1,
    )
    m = to_matrix(events, ["x", "n", "ok"])
    np.testing.assert_array_equal(m, [[0, 0, 1], [1, 1, 0], [2, 2, 1]])
    assert m.dtype == np.float64
    present = r"columns present: \['x', 'n', 'ok', 'label', 'jagged'\]"
    with pytest.raises(InputError, match=r"missing target column\(s\) \['y'\]; " + present):
        to_matrix(events, ["x", "y"], what="target")
    with pytest.raises(InputError, match="column 'label' has type string"):
        to_matrix(events, ["label"])
    with pytest.raises(InputError, match=r"column 'jagged' has type var \* float64.*ObjectSlots"):
        to_matrix(events, ["jagged"])
    with pytest.raises(InputError, match="missing column"):
        FeatureSpec(targets=["nope"]).flatten(events)


def test_check_finite_counts_per_column() -> None:
    m = np.array([[1.0, np.nan, 0.0], [np.inf, 2.0, 0.0], [1.0, np.nan, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(InputError, match=r"targets: 3 of 4 rows.*a: 0 NaN, 1 inf; b: 2 NaN, 0 inf\)"):
        check_finite(m, ["a", "b", "c"])
    kept, mask = check_finite(m, ["a", "b", "c"], policy="drop")
    np.testing.assert_array_equal(mask, [False, False, False, True])
    np.testing.assert_array_equal(kept, [[0.0, 0.0, 0.0]])
    events = ak.zip({"a": m[:, 0], "b": m[:, 1]})
    with pytest.raises(InputError, match="b: 2 NaN"):
        FeatureSpec(targets=["a", "b"]).matrices(events)
    x, _, report = FeatureSpec(targets=["a", "b"]).matrices(events, nonfinite="drop")
    assert x.shape == (1, 2)
    assert report.dropped_nonfinite == {"a": 1, "b": 2} and report.n_kept == 1


def test_from_matrix_round_trip() -> None:
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    flat = from_matrix(m, ["a", "b", "c"])
    assert str(flat.type) == "4 * {a: float64, b: float64, c: float64}"
    np.testing.assert_array_equal(to_matrix(flat, ["a", "b", "c"]), m)
    with pytest.raises(InputError, match=r"shape \(n, 2\)"):
        from_matrix(m, ["a", "b"])


def test_float32_inputs_are_promoted() -> None:
    """vector's mass of float32 massless photons goes negative after arithmetic; everything here is float64."""
    events = photon_events(2000, dtype=np.float32)
    spec = FeatureSpec(
        targets=["photon1_pt", "m_gg", "self"],
        objects=[ObjectSlots("photons", 2)],
        derived=[
            DerivedObservable("m_gg", "pair_mass", "photons"),
            DerivedObservable("self", "pair_mass", "photons", (1, 0)),
        ],
    )
    flat, _ = spec.flatten(events)
    assert all(str(flat[f].type.content) == "float64" for f in flat.fields)
    photons = to_objects(flat, spec.objects[0])
    same = ak.to_numpy((photons[:, 0] + photons[:, 0] - photons[:, 0]).mass)  # a massless photon, after arithmetic
    assert np.all(np.abs(same) < 1e-6 * ak.to_numpy(photons.pt[:, 0]))
    f32 = ak.zip(
        {f: ak.values_astype(photons[f], np.float32) for f in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D"
    )
    assert ak.min((f32[:, 0] + f32[:, 0] - f32[:, 0]).mass) < 0  # what promotion avoids
    x, _, _ = spec.matrices(events)
    assert x.dtype == np.float64
    np.testing.assert_allclose(x[:, 1], x[:, 2])


def test_to_objects_mass_and_extra_fields() -> None:
    slots = ObjectSlots("muons", 2, fields=("pt", "eta", "phi", "q"))
    flat = from_matrix(np.array([[40.0, 0.0, 0.0, 1.0, 30.0, 0.0, np.pi, -1.0]]), slots.columns())
    muons = to_objects(flat, slots, mass=0.10566, extra_fields=["q"])
    assert muons.fields == ["pt", "eta", "phi", "mass", "q"]
    assert ak.to_list(muons.q) == [[1.0, -1.0]]
    # back to back: m = sqrt((E1 + E2)^2 - (p1 - p2)^2)
    e1, e2 = np.hypot(40.0, 0.10566), np.hypot(30.0, 0.10566)
    np.testing.assert_allclose(float((muons[:, 0] + muons[:, 1]).mass[0]), np.sqrt((e1 + e2) ** 2 - 10.0**2))
    with pytest.raises(InputError, match=r"missing column\(s\) \['muon2_q'\]"):
        to_objects(
            flat[["muon1_pt", "muon1_eta", "muon1_phi", "muon1_q", "muon2_pt", "muon2_eta", "muon2_phi"]],
            slots,
            extra_fields=["q"],
        )
    with pytest.raises(InputError, match="needs slots with fields"):
        to_objects(flat, ObjectSlots("muons", 1, fields=("pt",)))
    with pytest.raises(InputError, match="2 object lists for 3 events"):
        with_objects(ak.zip({"a": np.arange(3.0)}), "muons", ak.concatenate([muons, muons]))
