"""``mcsurrogate fit`` and ``mcsurrogate scan``: pyhf HistFactory fits and scans on templates read from files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputExistsError
from ..files import atomic_write_text


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"{what} must be comma-separated numbers; got {text!r}") from exc


def _grid(text: str, what: str) -> list[float]:
    """``a,b,c`` or ``LOW:HIGH:N`` (N log-spaced points)."""
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(f"{what} as a range is LOW:HIGH:N; got {text!r}")
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
        if lo <= 0 or hi <= 0 or n < 1:
            raise InputError(f"{what} range needs positive LOW, HIGH and N ≥ 1; got {text!r}")
        return list(np.geomspace(lo, hi, n))
    return _floats(text, what)


def _sample(path: str, var: str, weight: str | None) -> Any:
    import awkward as ak

    from ..io import read_events
    from ..stats.scan import Sample

    cols = [var] + ([weight] if weight else [])
    events = read_events(path, columns=cols)
    try:
        values = ak.to_numpy(events[var]).astype(float)
        weights = ak.to_numpy(events[weight]).astype(float) if weight else None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: column {var!r} must be one number per event (flat), not a list") from exc
    return Sample(values, weights).checked(f"{path} ({var})")


def _binning(args: argparse.Namespace) -> dict[str, Any]:
    if args.edges:
        return {"bins": _floats(args.edges, "--edges"), "range": None}
    if not args.range:
        raise InputError("give --range LOW,HIGH with --bins, or the bin --edges")
    lo_hi = _floats(args.range, "--range")
    if len(lo_hi) != 2 or lo_hi[0] >= lo_hi[1]:
        raise InputError(f"--range is LOW,HIGH with LOW < HIGH; got {args.range!r}")
    return {"bins": args.bins, "range": tuple(lo_hi)}


def _out_dir(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def cmd_fit(args: argparse.Namespace) -> int:
    from ..stats import Inference, asimov_counts, build_workspace, fill_template, model_and_data, scale_template

    binning = _binning(args)
    sig = _sample(args.signal, args.var, args.weight)
    bkg = _sample(args.background, args.var, args.weight)
    if args.lumi <= 0:
        raise InputError(f"--lumi must be positive; got {args.lumi}")
    s = fill_template(sig.values, weights=sig.weights, name=args.var, **binning)
    b = scale_template(fill_template(bkg.values, bins=s.axes[0], weights=bkg.weights), factor=args.lumi)
    b_yield = float(b.values().sum())
    s = (
        scale_template(s, total=args.signal_fraction * b_yield)
        if args.signal_fraction
        else scale_template(s, factor=args.lumi)
    )
    if args.observed:
        obs_sample = _sample(args.observed, args.var, args.weight)
        observed = fill_template(obs_sample.values, bins=s.axes[0], weights=obs_sample.weights).values()
    else:
        observed = asimov_counts(s, b, args.asimov_mu)
    ws = build_workspace(
        s, b, observed, systematic=args.systematic, systematic_kind=args.systematic_kind, empty_bins=args.empty_bins
    )
    model, data = model_and_data(ws)
    inf = Inference(model, data)
    fit, disc, limit = inf.mu_hat(), inf.discovery(), inf.upper_limit(args.level)
    result = {
        "mu_hat": fit.mu,
        "mu_sigma": fit.sigma,
        "q0": disc.q0,
        "p0": disc.p0,
        "z0": disc.z0,
        "z_signed": disc.z_signed,
        "ul_observed": limit.observed,
        "ul_expected": dict(zip(("m2", "m1", "median", "p1", "p2"), limit.expected, strict=False)),
        "level": args.level,
        "background_yield": b_yield,
        "signal_yield": float(s.values().sum()),
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
    }
    out = _out_dir(args.out, args.overwrite)
    atomic_write_text(out / "workspace.json", json.dumps(dict(ws), indent=1))
    atomic_write_text(out / "fit.json", json.dumps(result, indent=1))
    print(
        f"mu_hat = {fit.mu:.4g} ± {fit.sigma:.3g}; Z0 = {disc.z_signed:+.3g} (p0 = {disc.p0:.3g}); "
        f"{1 - args.level:.0%} CLs limit: observed {limit.observed:.4g}, expected {limit.median:.4g} "
        f"[{limit.expected[1]:.4g}, {limit.expected[3]:.4g}]"
    )
    print(f"wrote {out / 'workspace.json'} (re-fit with pyhf alone) and {out / 'fit.json'}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from ..stats import rows_to_csv, save_scan_plots, scan

    binning = _binning(args)
    out = _out_dir(args.out, args.overwrite)
    rows = scan(
        _sample(args.signal, args.var, args.weight),
        _sample(args.background, args.var, args.weight),
        _sample(args.generated, args.var, args.weight),
        luminosities=_grid(args.lumis, "--lumis"),
        n_generated=[int(x) for x in _grid(args.ngen, "--ngen")],
        systematics=_floats(args.systematics, "--systematics"),
        systematic_kind=args.systematic_kind,
        mu_injected=args.asimov_mu,
        signal_fraction=args.signal_fraction or None,
        level=args.level,
        empty_bins=args.empty_bins,
        on_error="record" if args.keep_going else "raise",
        seed=args.seed,
        processes=args.processes,
        **binning,
    )
    atomic_write_text(
        out / "scan.json",
        json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "func"}, "rows": rows}, indent=1),
    )
    atomic_write_text(out / "scan.csv", rows_to_csv(rows))
    figures = save_scan_plots(rows, out)
    fitted = [r for r in rows if r["error"] is None]
    worst = max((r for r in fitted if r["template"] == "generated"), key=lambda r: abs(r["z_signed"]), default=None)
    if len(fitted) < len(rows):
        print(f"{len(rows) - len(fitted)} scan points failed to fit (their 'error' field says why)")
    print(f"{len(rows)} scan points → {out / 'scan.json'}, {out / 'scan.csv'} and {len(figures)} figures")
    if worst:
        print(
            f"largest spurious |Z0| = {abs(worst['z_signed']):.3g} at luminosity {worst['luminosity']:.3g}, "
            f"N_gen {worst['n_generated']:,}, systematic {worst['systematic']:.0%}"
        )
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--var", required=True, help="fit-variable column (one number per event, e.g. m_bb in GeV)")
    p.add_argument("--weight", help="event-weight column (expected events per unit luminosity)")
    p.add_argument("--bins", type=int, default=25, help="number of regular bins (default 25)")
    p.add_argument("--range", help="LOW,HIGH of the regular bins")
    p.add_argument("--edges", help="explicit bin edges e1,e2,… (instead of --bins/--range)")
    p.add_argument(
        "--signal-fraction",
        type=float,
        default=0.05,
        help="normalise the signal to this fraction of the background yield (0: use its weights)",
    )
    p.add_argument("--asimov-mu", type=float, default=0.0, help="signal strength injected in the Asimov data")
    p.add_argument("--systematic-kind", default="normsys", choices=("normsys", "shapesys", "both", "none"))
    p.add_argument(
        "--empty-bins",
        default="error",
        choices=("error", "floor"),
        help="background bins without yield: stop with an error, or use a documented floor",
    )
    p.add_argument("--level", type=float, default=0.05, help="CLs level (0.05: 95 %% CL)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output directory")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="pyhf fit: μ̂ ± σ, discovery Z0, CLs upper limit with bands; exports the workspace",
        description="Fill templates of --var from SIGNAL and BACKGROUND, build a HistFactory workspace "
        "(normfactor μ, background systematic, staterror), fit the observed data or "
        "the Asimov data, and write workspace.json and fit.json.",
    )
    p.add_argument("signal")
    p.add_argument("background", help="background template sample (MC or generated)")
    p.add_argument("--observed", help="sample whose histogram is the observation (default: Asimov of the templates)")
    p.add_argument("--lumi", type=float, default=1.0, help="luminosity multiplying the weights (default 1)")
    p.add_argument("--systematic", type=float, default=0.10, help="relative background systematic (default 0.10)")
    _common(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "scan",
        help="μ̂, spurious Z0 and CLs limits vs luminosity, N_gen and systematic (paper B)",
        description="Asimov data from MC signal + MC background; templates from the MC background "
        "(reference) and from N_gen generated events; writes scan.json, scan.csv and "
        "the figures.",
    )
    p.add_argument("signal")
    p.add_argument("background", help="MC background (defines the data and the reference template)")
    p.add_argument("generated", help="generated background")
    p.add_argument("--lumis", default="1:1000:10", help="a,b,c or LOW:HIGH:N log-spaced (default 1:1000:10)")
    p.add_argument(
        "--ngen", default="1000:100000:10", help="N_gen values, a,b,c or LOW:HIGH:N (default 1000:100000:10)"
    )
    p.add_argument("--systematics", default="0.05,0.10,0.20")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="record a point whose fit fails (NaN results and the message in 'error') instead of stopping",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation that picks the N_gen events")
    _common(p)
    p.set_defaults(func=cmd_scan)
