"""One-to-one ΔR matching: hand-made events with known answers, and the greedy nearest-first rule on random events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from mcsurrogate.errors import InputError
from mcsurrogate.response.matching import delta_r, match_objects, nearest_other

vector.register_awkward()


def objs(*rows: tuple[float, float, float]) -> list[dict[str, float]]:
    return [{"pt": pt, "eta": eta, "phi": phi} for pt, eta, phi in rows]


def test_nearest_pair_wins_a_conflict_and_the_loser_takes_its_next_partner() -> None:
    # reco 0 lies 0.02 from truth 1 and 0.05 from truth 0: truth 1 gets it; truth 0 falls back to reco 1 (0.08)
    truth = ak.Array([objs((50, 0.0, 0.0), (40, 0.07, 0.0))])
    reco = ak.Array([objs((45, 0.05, 0.0), (51, -0.08, 0.0))])
    m = match_objects(truth, reco, max_dr=0.1)
    assert m.truth_index.tolist() == [[1, 0]]
    assert m.reco_index.tolist() == [[1, 0]]
    np.testing.assert_allclose(m.delta_r.tolist()[0], [0.08, 0.02])


def test_a_chain_of_competing_pairs_needs_a_second_round() -> None:
    # truth at η = 0, 0.05, 0.12 and reco at η = 0.03, 0.08, 0.125 (φ = 0): ΔR of the pairs (t, r)
    #   t0: r0 0.03, r1 0.08          t1: r0 0.02, r1 0.03, r2 0.075          t2: r0 0.09, r1 0.04, r2 0.005
    # greedy: (t2, r2), (t1, r0), then t0's only free partner r1 (0.08). In round 1 (t1, r0) and (t2, r2) are
    # mutual nearest; t0's nearest (r0) is taken, so (t0, r1) waits for round 2.
    truth = ak.Array([objs((50, 0.0, 0.0), (40, 0.05, 0.0), (30, 0.12, 0.0))])
    reco = ak.Array([objs((45, 0.03, 0.0), (41, 0.08, 0.0), (29, 0.125, 0.0))])
    m = match_objects(truth, reco, max_dr=0.1)
    assert m.truth_index.tolist() == [[1, 0, 2]]
    assert m.reco_index.tolist() == [[1, 0, 2]]
    assert m.rounds == 2
    # "each truth object takes its nearest reco" would give t0 and t1 both r0: one-to-one is what differs
    assert m.delta_r.tolist()[0] == pytest.approx([0.08, 0.02, 0.005])


def test_phi_wraps_around_and_max_dr_is_exclusive() -> None:
    truth = ak.Array([objs((50, 0.0, 3.13)), objs((50, 0.0, 0.0))])
    reco = ak.Array([objs((50, 0.0, -3.13)), objs((50, 0.1, 0.0))])
    m = match_objects(truth, reco, max_dr=0.1)
    assert m.truth_index.tolist() == [[0], [-1]]  # 2π − 6.26 = 0.023 matches; ΔR = 0.1 exactly does not
    assert m.delta_r[0, 0] == pytest.approx(2 * np.pi - 6.26)


def test_empty_events_and_unbalanced_counts() -> None:
    truth = ak.Array([[], objs((20, 1.0, 1.0)), [], objs((20, 1.0, 1.0), (30, -1.0, 2.0))])
    reco = ak.Array([objs((20, 1.0, 1.0)), [], [], objs((29, -1.01, 2.0))])
    m = match_objects(truth, reco)
    assert m.truth_index.tolist() == [[], [-1], [], [-1, 0]]
    assert m.reco_index.tolist() == [[-1], [], [], [1]]
    t, r = m.pairs(truth, reco)
    assert ak.num(t).tolist() == [0, 0, 0, 1] and ak.num(r).tolist() == [0, 0, 0, 1]
    assert r[3, 0].pt == 29 and t[3, 0].pt == 30
    assert m.unmatched_truth(truth).pt.tolist() == [[], [20], [], [20]]
    assert m.unmatched_reco(reco).pt.tolist() == [[20], [], [], []]
    assert m.to_dict() == {"n_truth": 3, "n_reco": 2, "n_matched": 1, "max_dr": 0.1, "rounds": 1}


def greedy_reference(t: np.ndarray, r: np.ndarray, max_dr: float) -> list[int]:
    """Plain Python greedy matching of one event: all pairs sorted by ΔR, take when both free."""
    pairs = sorted(
        (float(delta_r(t[i, 0], t[i, 1], r[j, 0], r[j, 1])), i * len(r) + j, i, j)
        for i in range(len(t))
        for j in range(len(r))
    )
    out, used = [-1] * len(t), set()
    for dr, _, i, j in pairs:
        if dr < max_dr and out[i] < 0 and j not in used:
            out[i] = j
            used.add(j)
    return out


def test_agrees_with_plain_greedy_matching_on_crowded_random_events() -> None:
    rng = np.random.default_rng(3)
    truth_lists, reco_lists, expected = [], [], []
    for _ in range(400):
        nt, nr = rng.integers(0, 9), rng.integers(0, 9)
        t = np.column_stack([rng.uniform(-0.5, 0.5, nt), rng.uniform(-0.5, 0.5, nt)])  # crowded: many conflicts
        r = np.column_stack([rng.uniform(-0.5, 0.5, nr), rng.uniform(-0.5, 0.5, nr)])
        truth_lists.append([{"eta": e, "phi": p} for e, p in t])
        reco_lists.append([{"eta": e, "phi": p} for e, p in r])
        expected.append(greedy_reference(t, r, 0.3))
    m = match_objects(ak.Array(truth_lists), ak.Array(reco_lists), max_dr=0.3)
    assert m.truth_index.tolist() == expected
    assert m.rounds >= 2  # the crowded events really exercise several rounds
    # reco_index is the inverse map
    for ti, ri in zip(m.truth_index.tolist(), m.reco_index.tolist(), strict=True):
        assert all(ri[j] == i for i, j in enumerate(ti) if j >= 0)
        assert sum(j >= 0 for j in ri) == sum(j >= 0 for j in ti)


def test_vector_records_in_and_out() -> None:
    truth = ak.zip(
        {"pt": [[60.0, 50.0]], "eta": [[0.5, -0.5]], "phi": [[0.0, 3.0]], "mass": [[0.0, 0.0]]}, with_name="Momentum4D"
    )
    reco = truth[:, ::-1]
    t, r = match_objects(truth, reco).pairs(truth, reco)
    assert ak.all(t.pt == r.pt)
    assert float((r[:, 0] + r[:, 1]).mass[0]) == pytest.approx(float((truth[:, 0] + truth[:, 1]).mass[0]))


def test_nearest_other_object() -> None:
    ev = ak.Array([objs((1, 0.0, 0.0), (1, 0.3, 0.0), (1, 0.0, 0.4)), objs((1, 0.0, 0.0)), []])
    out = nearest_other(ev, empty=9.0).tolist()
    np.testing.assert_allclose(out[0], [0.3, 0.3, 0.4])
    assert out[1:] == [[9.0], []]


@pytest.mark.parametrize("phi_range", [np.pi, 3 * np.pi])  # φ in [−π, π), and beyond it (e.g. [0, 2π))
def test_nearest_other_agrees_with_a_loop_over_crowded_events(phi_range: float) -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 9, 400)
    k = int(counts.sum())
    ev = ak.unflatten(
        ak.zip({"pt": np.ones(k), "eta": rng.uniform(-2.5, 2.5, k), "phi": rng.uniform(-phi_range, phi_range, k)}),
        counts,
    )
    got = nearest_other(ev, empty=7.0).tolist()
    for event, values in zip(ev.tolist(), got, strict=True):
        for a, value in zip(event, values, strict=True):
            others = [delta_r(a["eta"], a["phi"], b["eta"], b["phi"]) for b in event if b is not a]
            assert value == pytest.approx(min(others, default=7.0), abs=1e-12)


def test_bad_input_is_refused_clearly() -> None:
    truth = ak.Array([objs((1, 0.0, 0.0))])
    with pytest.raises(InputError, match="same events"):
        match_objects(truth, ak.Array([objs((1, 0.0, 0.0)), []]))
    with pytest.raises(InputError, match=r"lack field\(s\) \['phi'\]"):
        match_objects(truth, ak.Array([[{"eta": 0.0}]]))
    with pytest.raises(InputError, match="max_dr"):
        match_objects(truth, truth, max_dr=0.0)
    with pytest.raises(InputError, match="awkward array"):
        match_objects(np.zeros(3), truth)
    m = match_objects(truth, truth)
    with pytest.raises(InputError, match="not the ones matched"):
        m.pairs(ak.Array([objs((1, 0.0, 0.0), (2, 1.0, 1.0))]), truth)
