"""One-to-one ΔR matching of truth objects to reconstructed objects, nearest pair first, any multiplicity.

ΔR = √(Δη² + Δφ²) (φ difference wrapped into (−π, π]). Within an event, the pair of smallest ΔR below
``max_dr`` is matched first, both objects leave, and so on (the greedy "nearest first" matching of CMS's
``matchByCommonParentObject``-free matchers and of coffea's ``nearest``-then-remove idiom).

Vectorised over all events at once, with no loop over events: the candidate pairs of every event (``ak.argcartesian``)
are flattened with event offsets into global object numbers, so that events never share an object, and then matched
in rounds. In a round every pair that is the nearest remaining pair of both its truth and its reco object is accepted
(ties broken by pair order); its objects and all their other pairs leave. A pair accepted in a round is exactly the
pair greedy matching would take: no remaining pair touching its objects is nearer. The rounds end when no pair is
left; their number is set by the longest chain of competing pairs, in practice 1–3.

>>> import awkward as ak
>>> truth = ak.Array([[{"pt": 50.0, "eta": 0.0, "phi": 0.0}, {"pt": 30.0, "eta": 1.0, "phi": 1.0}]])
>>> reco = ak.Array([[{"pt": 31.0, "eta": 1.01, "phi": 1.0}, {"pt": 12.0, "eta": -2.0, "phi": 0.0}]])
>>> m = match_objects(truth, reco, max_dr=0.1)
>>> m.truth_index.tolist(), m.reco_index.tolist()
([[-1, 0]], [[1, -1]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from ..arguments import check_float, describe
from ..errors import InputError

__all__ = ["Matching", "delta_r", "match_objects", "nearest_other"]


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """ΔR = √(Δη² + Δφ²) of numpy arrays (φ in radians, Δφ wrapped into [−π, π))."""
    return np.hypot(np.asarray(eta1) - eta2, _wrap(np.asarray(phi1, dtype=np.float64) - phi2))


def _objects(value: Any, name: str) -> ak.Array:
    """``value`` checked to be a jagged array of records with ``eta`` and ``phi`` (one list per event)."""
    if not isinstance(value, ak.Array):
        raise InputError(
            f"{name} must be an awkward array of object lists (var * {{eta, phi, ...}}), got {describe(value)}"
        )
    if value.ndim != 2 or not value.fields:
        raise InputError(
            f"{name} must be one list of records per event (var * {{eta, phi, ...}}), got type {value.type}"
        )
    missing = [f for f in ("eta", "phi") if f not in value.fields]
    if missing:
        raise InputError(f"{name} objects lack field(s) {missing} needed for ΔR; fields present: {value.fields}")
    return value


def _flat(values: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(values, axis=1)), dtype=np.float64)


@dataclass
class Matching:
    """The result of :func:`match_objects` (jagged arrays, one list per event).

    ``truth_index``: for each truth object the position of its reco partner in the event's reco list, −1 if it has
    none (an inefficiency); ``reco_index``: for each reco object the position of its truth partner, −1 if none (a
    fake); ``delta_r``: for each truth object the ΔR to its partner, NaN if it has none; ``rounds``: the number of
    matching rounds the events needed.
    """

    truth_index: ak.Array
    reco_index: ak.Array
    delta_r: ak.Array
    max_dr: float
    rounds: int

    @property
    def truth_matched(self) -> ak.Array:
        """Boolean per truth object: has a reco partner."""
        return self.truth_index >= 0

    @property
    def reco_matched(self) -> ak.Array:
        """Boolean per reco object: has a truth partner."""
        return self.reco_index >= 0

    def pairs(self, truth: ak.Array, reco: ak.Array) -> tuple[ak.Array, ak.Array]:
        """``(matched truth, their reco partners)``: two jagged arrays of equal counts, aligned object by object, in
        the truth objects' order."""
        self._check_lengths(truth, reco)
        mask = self.truth_matched
        return truth[mask], reco[self.truth_index[mask]]

    def unmatched_truth(self, truth: ak.Array) -> ak.Array:
        """The truth objects without a reco partner (inefficiency), per event."""
        self._check_lengths(truth, None)
        return truth[~self.truth_matched]

    def unmatched_reco(self, reco: ak.Array) -> ak.Array:
        """The reco objects without a truth partner (fakes), per event."""
        self._check_lengths(None, reco)
        return reco[~self.reco_matched]

    def _check_lengths(self, truth: ak.Array | None, reco: ak.Array | None) -> None:
        for name, arr, ref in (("truth", truth, self.truth_index), ("reco", reco, self.reco_index)):
            if arr is None:
                continue
            if len(arr) != len(ref) or not np.array_equal(ak.to_numpy(ak.num(arr, axis=1)), ak.to_numpy(ak.num(ref))):
                raise InputError(f"the {name} objects given are not the ones matched (different events or counts)")

    def to_dict(self) -> dict[str, Any]:
        """Counts (JSON): truth and reco objects, matched pairs, rounds, ``max_dr``."""
        n_pairs = int(ak.sum(self.truth_matched))
        return {
            "n_truth": int(ak.sum(ak.num(self.truth_index))),
            "n_reco": int(ak.sum(ak.num(self.reco_index))),
            "n_matched": n_pairs,
            "max_dr": self.max_dr,
            "rounds": self.rounds,
        }


def match_objects(truth: ak.Array, reco: ak.Array, *, max_dr: float = 0.1) -> Matching:
    """Match ``truth`` objects to ``reco`` objects one to one by ΔR < ``max_dr``, nearest pair first (module docstring).

    Both are jagged arrays (one list per event, same number of events) of records with ``eta`` and ``phi`` (radians),
    any number of objects per event, e.g. ``events.GenPart`` and ``events.Photon``.
    """
    truth, reco = _objects(truth, "truth"), _objects(reco, "reco")
    max_dr = check_float(max_dr, "max_dr", above=0.0)
    if len(truth) != len(reco):
        raise InputError(f"truth and reco must hold the same events: {len(truth)} vs {len(reco)} events")
    nt = np.asarray(ak.to_numpy(ak.num(truth, axis=1)), dtype=np.int64)
    nr = np.asarray(ak.to_numpy(ak.num(reco, axis=1)), dtype=np.int64)
    t_start = np.concatenate([[0], np.cumsum(nt)[:-1]]) if len(nt) else np.zeros(0, np.int64)
    r_start = np.concatenate([[0], np.cumsum(nr)[:-1]]) if len(nr) else np.zeros(0, np.int64)

    pairs = ak.argcartesian([truth.eta, reco.eta], axis=1)
    n_pairs = nt * nr
    ti = np.asarray(ak.to_numpy(ak.flatten(pairs["0"])), dtype=np.int64) + np.repeat(t_start, n_pairs)
    rj = np.asarray(ak.to_numpy(ak.flatten(pairs["1"])), dtype=np.int64) + np.repeat(r_start, n_pairs)
    t_eta, t_phi = _flat(truth.eta), _flat(truth.phi)
    r_eta, r_phi = _flat(reco.eta), _flat(reco.phi)
    dr = delta_r(t_eta[ti], t_phi[ti], r_eta[rj], r_phi[rj])

    keep = dr < max_dr
    order = np.argsort(dr[keep], kind="stable")  # nearest first; ties by pair order
    ti, rj, dr = ti[keep][order], rj[keep][order], dr[keep][order]
    truth_partner = np.full(len(t_eta), -1, dtype=np.int64)
    reco_partner = np.full(len(r_eta), -1, dtype=np.int64)
    truth_dr = np.full(len(t_eta), np.nan)
    rounds = 0
    while len(ti):
        rounds += 1
        best_t = np.zeros(len(ti), dtype=bool)
        best_t[np.unique(ti, return_index=True)[1]] = True  # first occurrence = nearest pair of that truth object
        best_r = np.zeros(len(rj), dtype=bool)
        best_r[np.unique(rj, return_index=True)[1]] = True
        take = best_t & best_r
        truth_partner[ti[take]] = rj[take]
        reco_partner[rj[take]] = ti[take]
        truth_dr[ti[take]] = dr[take]
        left = (truth_partner[ti] < 0) & (reco_partner[rj] < 0)
        ti, rj, dr = ti[left], rj[left], dr[left]

    event_t = np.repeat(np.arange(len(nt)), nt)
    event_r = np.repeat(np.arange(len(nr)), nr)
    local_t = np.where(truth_partner >= 0, truth_partner - r_start[event_t] if len(event_t) else 0, -1)
    local_r = np.where(reco_partner >= 0, reco_partner - t_start[event_r] if len(event_r) else 0, -1)
    return Matching(
        truth_index=ak.unflatten(local_t.astype(np.int64), nt),
        reco_index=ak.unflatten(local_r.astype(np.int64), nr),
        delta_r=ak.unflatten(truth_dr, nt),
        max_dr=max_dr,
        rounds=rounds,
    )


def nearest_other(objects: ak.Array, *, empty: float = 10.0) -> ak.Array:
    """For each object, ΔR to the nearest other object of the same event (``empty`` when it is alone), jagged.

    Vectorised in numpy over all ordered pairs (i, j) of an event's objects: the pairs of one object are contiguous,
    so one ``np.minimum.reduceat`` takes each object's minimum of ΔR² (the pair with itself counts as +∞)."""
    objects = _objects(objects, "objects")
    n = np.asarray(ak.to_numpy(ak.num(objects, axis=1)), dtype=np.int64)
    eta, phi = _flat(objects.eta), _flat(objects.phi)
    if not len(eta):
        return ak.unflatten(np.zeros(0), n)
    phi = _wrap(phi)  # once per object: then |Δφ| < 2π, and min(|Δφ|, 2π − |Δφ|) wraps each pair's
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    per_object = np.repeat(n, n)  # pairs of each object: its event's count
    first = np.repeat(start, n)  # each object's event start
    offsets = np.concatenate([[0], np.cumsum(per_object)[:-1]])
    i = np.repeat(np.arange(len(eta)), per_object)
    j = np.arange(int(per_object.sum())) - np.repeat(offsets - first, per_object)
    deta = eta[i] - eta[j]
    dphi = np.abs(phi[i] - phi[j])
    dphi = np.minimum(dphi, 2 * np.pi - dphi)
    dr2 = deta * deta + dphi * dphi  # the square root of the minimum only: half the time of ΔR over all pairs
    dr2[i == j] = np.inf
    out = np.sqrt(np.minimum.reduceat(dr2, offsets))
    out[~np.isfinite(out)] = float(empty)
    return ak.unflatten(out, n)
