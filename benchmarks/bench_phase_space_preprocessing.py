"""Phase-space (RamboOnDiet + ELSA's massive tweak) preprocessing against raw four-momenta, on a closed final state.

    nice -n 10 python benchmarks/bench_phase_space_preprocessing.py [--train 25000] [--held-out 10000] \\
        [--epochs 12] [--json out.json]

Pythia 8 t t̄ → b μ⁺ν b̄ μ⁻ν̄ at 13 TeV, leading order (ISR, FSR, MPI and primordial k_T off, so the six decay
products balance in p_T exactly; m_b = 4.8 GeV, m_μ = 0.10566 GeV: massive particles). The same flow (``--flow``,
``--blocks``, ``--hidden``, ``--epochs``; per-column Gauss-rank preprocessing in every variant) learns the
``--train`` events in three parametrisations:

* ``raw-four-momenta``: (E, p_x, p_y, p_z) of each particle (24 columns), nothing built in;
* ``raw-pt-eta-phi``: p_T, η, φ of each particle (18 columns), masses fixed (on shell by construction);
* ``phase-space``: the p_T, η, φ columns as targets with a
  :class:`~mcsurrogate.phase_space.PhaseSpacePreprocessor` as the surrogate's ``event_transform`` (the flow learns
  16 columns: 14 logits of the RamboOnDiet variables, log(M − Σm), y; ``system_pt="zero"``; samples come back as
  p_T, η, φ), particle order b̄ μ⁻ ν̄ b μ⁺ ν so that m_t and m_W⁺ are cluster masses; momentum conservation and mass
  shells built in.

Each generates ``--held-out`` events, compared with as many held-out Pythia events by the C2ST
(:func:`mcsurrogate.validation.c2st`, boosted trees) on the same physical features: the 18 p_T, η, φ plus the
masses m(bμ⁺ν), m(b̄μ⁻ν̄), m(μ⁺ν), m(μ⁻ν̄) (22 features), and on the 18 alone. Also the generated events'
momentum-conservation violation |Σ p⃗_T| (GeV), mass-shell violations |m_i − m_i^true| (GeV), and the share of
events in the W and top windows (|m_μν − m_W| < 5 GeV, |m_bμν − m_t| < 10 GeV around the MC medians) against the
MC's. torch uses one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
import torch

#: particle order for RamboOnDiet: the t's decay products last (cluster masses m_t, m_W⁺)
OBJECTS = ["bbar", "mum", "nubar", "b", "mup", "nu"]
MASSES = [4.8, 0.10566, 0.0, 4.8, 0.10566, 0.0]  # GeV, Pythia's m0
PDG = {-5: "bbar", 13: "mum", -14: "nubar", 5: "b", -13: "mup", 14: "nu"}

SETTINGS = [
    "Beams:eCM = 13000",
    "Top:gg2ttbar = on",
    "Top:qqbar2ttbar = on",
    "24:onMode = off",
    "24:onIfAny = 13",  # W → μ ν_μ
    "PartonLevel:ISR = off",
    "PartonLevel:FSR = off",
    "PartonLevel:MPI = off",
    "BeamRemnants:primordialKT = off",
    "HadronLevel:all = off",
]


def select_dimuon_ttbar(event: Any) -> dict[str, float] | None:
    """The six top decay products (ancestry traced to a top), or None (t → W s/d, a missing product)."""
    found: dict[str, Any] = {}
    for i in range(event.size()):
        q = event[i]
        if not q.isFinal() or q.id() not in PDG:
            continue
        j = i
        while j > 0 and event[j].idAbs() != 6:
            j = event[j].mother1()
        if j > 0:
            if PDG[q.id()] in found:
                return None
            found[PDG[q.id()]] = q
    if len(found) != len(OBJECTS):
        return None
    record: dict[str, float] = {}
    for name in OBJECTS:
        q = found[name]
        record.update({f"{name}_pt": q.pT(), f"{name}_eta": q.eta(), f"{name}_phi": q.phi(), f"{name}_mass": q.m()})
    return record


def momenta_from_pt_eta_phi(cols: Any, masses: np.ndarray) -> np.ndarray:
    """(events, 6, 4) four-momenta (E, px, py, pz) from ``{o}_pt, _eta, _phi`` columns and masses (6,)."""
    pt = np.stack([np.asarray(cols[f"{o}_pt"], dtype=np.float64) for o in OBJECTS], axis=1)
    eta = np.stack([np.asarray(cols[f"{o}_eta"], dtype=np.float64) for o in OBJECTS], axis=1)
    phi = np.stack([np.asarray(cols[f"{o}_phi"], dtype=np.float64) for o in OBJECTS], axis=1)
    p = np.stack([np.zeros_like(pt), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=-1)
    p[..., 0] = np.sqrt(masses**2 + np.sum(p[..., 1:] ** 2, axis=-1))
    return p


def signed_mass(p: np.ndarray) -> np.ndarray:
    m2 = p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def physical_features(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(18 low-level p_T, η, φ; 4 resonance masses m_t, m_t̄, m_W⁺, m_W⁻) of momenta (events, 6, 4)."""
    pt = np.hypot(p[..., 1], p[..., 2])
    low = np.concatenate([pt, np.arcsinh(p[..., 3] / pt), np.arctan2(p[..., 2], p[..., 1])], axis=1)
    k = {o: p[:, j] for j, o in enumerate(OBJECTS)}
    high = np.stack(
        [
            signed_mass(k["b"] + k["mup"] + k["nu"]),
            signed_mass(k["bbar"] + k["mum"] + k["nubar"]),
            signed_mass(k["mup"] + k["nu"]),
            signed_mass(k["mum"] + k["nubar"]),
        ],
        axis=1,
    )
    return low, high


def violations(p: np.ndarray, high: np.ndarray, centres: dict[str, float]) -> dict[str, float]:
    """Momentum conservation, mass shells and resonance windows of momenta (events, 6, 4)."""
    sum_pt = np.hypot(p[..., 1].sum(axis=1), p[..., 2].sum(axis=1))
    scalar = np.hypot(p[..., 1], p[..., 2]).sum(axis=1)
    shell = np.abs(signed_mass(p) - np.asarray(MASSES))
    return {
        "sum_pt_median_gev": float(np.median(sum_pt)),
        "sum_pt_p99_gev": float(np.quantile(sum_pt, 0.99)),
        "sum_pt_over_scalar_median": float(np.median(sum_pt / scalar)),
        "mass_shell_median_gev": float(np.median(shell)),
        "mass_shell_p99_gev": float(np.quantile(shell, 0.99)),
        "in_top_window": float(np.mean(np.abs(high[:, :2] - centres["top"]) < 10.0)),
        "in_w_window": float(np.mean(np.abs(high[:, 2:] - centres["w"]) < 5.0)),
    }


def variant_columns(name: str, p: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    """The training columns of a raw variant from momenta (events, 6, 4)."""
    cols: dict[str, np.ndarray] = {}
    if name == "raw-four-momenta":
        for j, o in enumerate(OBJECTS):
            for k, c in enumerate(("E", "px", "py", "pz")):
                cols[f"{o}_{c}"] = p[:, j, k]
    else:  # raw-pt-eta-phi
        pt = np.hypot(p[..., 1], p[..., 2])
        for j, o in enumerate(OBJECTS):
            cols[f"{o}_pt"], cols[f"{o}_eta"] = pt[:, j], np.arcsinh(p[:, j, 3] / pt[:, j])
            cols[f"{o}_phi"] = np.arctan2(p[:, j, 2], p[:, j, 1])
    return cols, list(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=25_000, help="training MC events (80/10/10 split inside fit)")
    ap.add_argument("--held-out", type=int, default=10_000, help="held-out MC events = generated events per variant")
    ap.add_argument("--flow", default="rqs-ar")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0, help="training and sampling seed")
    ap.add_argument("--sample-seed", type=int, default=2024, help="the Pythia run's seed")
    ap.add_argument("--c2st-repeats", type=int, default=3)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)

    import awkward as ak

    from mcsurrogate import Surrogate
    from mcsurrogate.generators.pythia import run_pythia
    from mcsurrogate.phase_space import PhaseSpacePreprocessor
    from mcsurrogate.validation import c2st

    t_start = time.perf_counter()
    n_total = args.train + args.held_out
    events, stats = run_pythia(SETTINGS, n_total, seed=args.sample_seed, select=select_dimuon_ttbar, progress=False)
    mc = momenta_from_pt_eta_phi(events, np.asarray(MASSES))
    pythia_masses = np.stack([np.asarray(events[f"{o}_mass"]) for o in OBJECTS], axis=1)
    print(
        f"Pythia: {stats.accepted} of {stats.tried} events accepted in {stats.seconds:.1f} s; masses "
        f"{np.unique(pythia_masses.round(6)).tolist()} GeV; max |sum p_T| {np.abs(mc[..., 1:3].sum(axis=1)).max():.2e} GeV"
    )
    train, held = mc[: args.train], mc[args.train :]
    held_low, held_high = physical_features(held)
    centres = {"top": float(np.median(held_high[:, :2])), "w": float(np.median(held_high[:, 2:]))}
    rows: dict[str, dict[str, Any]] = {"pythia (held-out)": violations(held, held_high, centres)}

    flow = {"model": args.flow, "blocks": args.blocks, "hidden": args.hidden}
    training = {"epochs": args.epochs, "batch_size": 512, "seed": args.seed}
    phase_space = PhaseSpacePreprocessor(OBJECTS, MASSES, system_pt="zero")
    for name in ("raw-four-momenta", "raw-pt-eta-phi", "phase-space"):
        t0 = time.perf_counter()
        cols, targets = variant_columns("raw-pt-eta-phi" if name == "phase-space" else name, train)
        model = Surrogate(
            targets,
            flow=flow,
            preprocessing="gauss-rank",
            training=training,
            event_transform=phase_space if name == "phase-space" else None,
        )
        model.fit(ak.zip(cols), progress=False)
        t1 = time.perf_counter()
        sample = model.sample(args.held_out, seed=args.seed + 1)
        if name == "raw-four-momenta":
            x = np.stack([np.asarray(sample[c]) for c in targets], axis=1).reshape(-1, len(OBJECTS), 4)
            gen = x
        else:
            gen = momenta_from_pt_eta_phi(sample, np.asarray(MASSES))
        t2 = time.perf_counter()
        low, high = physical_features(gen)
        ok = np.all(np.isfinite(np.concatenate([low, high], axis=1)), axis=1)
        both = c2st(
            np.concatenate([held_low, held_high], axis=1),
            np.concatenate([low, high], axis=1)[ok],
            n_repeats=args.c2st_repeats,
            seed=args.seed,
        )
        low_only = c2st(held_low, low[ok], n_repeats=args.c2st_repeats, seed=args.seed)
        rows[name] = {
            "columns": len(model.flow_columns),
            "c2st_auc_22": both.auc,
            "c2st_auc_22_ci": list(both.auc_ci),
            "c2st_auc_18": low_only.auc,
            "c2st_auc_18_ci": list(low_only.auc_ci),
            "non_finite_events": int((~ok).sum()),
            "best_epoch": model.metrics.get("training", {}).get("best_epoch"),
            "fit_seconds": t1 - t0,
            "sample_seconds": t2 - t1,
            **violations(gen[ok], high[ok], centres),
        }
        print(f"{name}: fitted in {t1 - t0:.0f} s, C2ST AUC (22 features) {both.auc:.3f}", flush=True)

    print(f"\nC2ST against {args.held_out} held-out Pythia events; {args.train} training events, {flow}, {training}")
    head = f"{'variant':20s} {'cols':>4s} {'AUC 22 [CI]':>22s} {'AUC 18':>7s} {'|ΣpT| med/p99 GeV':>19s} "
    print(head + f"{'|Δm| med/p99 GeV':>17s} {'top win':>7s} {'W win':>6s}")
    for name, r in rows.items():
        auc = (
            f"{r['c2st_auc_22']:.3f} [{r['c2st_auc_22_ci'][0]:.3f}, {r['c2st_auc_22_ci'][1]:.3f}]"
            if "columns" in r
            else ""
        )
        auc18 = f"{r['c2st_auc_18']:.3f}" if "columns" in r else ""
        print(
            f"{name:20s} {r.get('columns', ''):>4} {auc:>22s} {auc18:>7s} "
            f"{r['sum_pt_median_gev']:8.2g}/{r['sum_pt_p99_gev']:<9.2g} "
            f"{r['mass_shell_median_gev']:7.2g}/{r['mass_shell_p99_gev']:<8.2g} "
            f"{r['in_top_window']:7.3f} {r['in_w_window']:6.3f}"
        )
    base = rows["raw-four-momenta"]["c2st_auc_22"] - 0.5
    for name in ("raw-pt-eta-phi", "phase-space"):
        ratio = (rows[name]["c2st_auc_22"] - 0.5) / base if base > 0 else float("nan")
        print(f"AUC excess over 0.5, {name} / raw-four-momenta: {ratio:.2f}")
    wall = time.perf_counter() - t_start
    print(f"wall time {wall:.0f} s")
    if args.json:
        out = {
            "benchmark": "phase_space_preprocessing",
            "args": vars(args),
            "pythia": {"settings": SETTINGS, **stats.to_dict()},
            "centres_gev": centres,
            "rows": rows,
            "wall_seconds": wall,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2, allow_nan=False)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
