"""``mcsurrogate fit``, ``scan`` and ``coverage``: pyhf HistFactory fits, scans and coverage by toys on templates
read from files.

Every flag is checked when it is parsed (the types of :mod:`mcsurrogate.cli.arguments` and the few below): a bad
value is an ``argparse`` error with exit code 2 before any file is read; flags that need each other
(``--surrogate-uncertainty histosys`` and ``--ensemble``) are checked before any file is read too, and so is
``--out`` (:func:`mcsurrogate.files.output_directory`: writable, empty unless ``--overwrite``, locked against a
second writer; a command that fails before writing leaves no empty ``--out`` behind). The JSON files
they write are strict (no ``NaN``/``Infinity``: see :mod:`mcsurrogate.stats.jsonable`). The surrogate's own
uncertainty (``--surrogate-uncertainty histosys|shapesys|spurious``) comes from an ensemble directory
(:class:`mcsurrogate.ensemble.SurrogateEnsemble`, loaded only then: torch) or a measured spurious signal.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import atomic_write_text, output_directory
from .arguments import (
    event_count,
    float_list,
    fraction,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
)

#: the kinds ``--surrogate-uncertainty`` takes (those of :class:`mcsurrogate.stats.SurrogateUncertainty`)
_UNCERTAINTY_KINDS = ("histosys", "shapesys", "spurious")


# ------------------------------------------------------------------------------------------------ flag types
def _finite_float(text: str) -> float:
    """A finite number (a signal strength)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _relative_uncertainty(text: str) -> float:
    """A relative uncertainty in [0, 1) (0.10 = 10 %)."""
    value = _finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a relative uncertainty in [0, 1), got {text!r}")
    return value


def _relative_uncertainties(text: str) -> list[float]:
    """Comma-separated relative uncertainties, each in [0, 1)."""
    return [_relative_uncertainty(repr(x)) for x in float_list(text)]


def _fit_range(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` with LOW < HIGH (the fit variable's units, e.g. GeV)."""
    values = float_list(text)
    if len(values) != 2 or not values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW < HIGH, got {text!r}")
    return values[0], values[1]


def _edges(text: str) -> list[float]:
    """Bin edges ``e1,e2,…``: at least two, strictly increasing."""
    values = float_list(text)
    if len(values) < 2 or np.any(np.diff(values) <= 0):
        raise argparse.ArgumentTypeError(f"expected at least two strictly increasing bin edges, got {text!r}")
    return values


def _luminosities(text: str) -> list[float]:
    """``a,b,c`` or ``LOW:HIGH:N`` (N log-spaced points), every luminosity factor > 0."""
    if ":" not in text:
        return [positive_float(repr(x)) for x in float_list(text)]
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:N (N log-spaced points), got {text!r}")
    low, high, n = positive_float(parts[0]), positive_float(parts[1]), positive_int(parts[2])
    return [float(x) for x in np.geomspace(low, high, n)]


def _event_counts(text: str) -> list[int]:
    """``a,b,c`` or ``LOW:HIGH:N`` (N log-spaced, rounded down), every number of events ≥ 1."""
    if ":" not in text:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError("expected comma-separated numbers of events, got nothing")
        return [event_count(p) for p in parts]
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:N (N log-spaced event counts), got {text!r}")
    low, high, n = event_count(parts[0]), event_count(parts[1]), positive_int(parts[2])
    return sorted({int(x) for x in np.geomspace(low, high, n)})


def _uncertainty_kinds(text: str) -> list[str]:
    """Comma-separated kinds of the surrogate's own uncertainty: histosys or shapesys, and/or spurious."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in _UNCERTAINTY_KINDS]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(
            f"expected one or more of {', '.join(_UNCERTAINTY_KINDS)} (comma-separated), got {text!r}"
        )
    if {"histosys", "shapesys"} <= set(kinds):
        raise argparse.ArgumentTypeError(
            "histosys and shapesys carry the same spread: choose one (with or without spurious)"
        )
    return list(dict.fromkeys(kinds))


def _ensemble_dir(text: str) -> str:
    """An ensemble directory (with ensemble.json), as ``SurrogateEnsemble.save`` writes it."""
    path = Path(text)
    if not (path / "ensemble.json").is_file():
        hint = " (a single model: train an ensemble)" if (path / "config.json").is_file() else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not an ensemble directory (no ensemble.json){hint}")
    return text


# ------------------------------------------------------------------------------------------------ commands
def _sample(path: str, var: str, weight: str | None) -> Any:
    import awkward as ak

    from ..errors import InputError
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
        return {"bins": args.edges, "range": None}
    return {"bins": args.bins, "range": args.range}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _check_modifier_flags(args: argparse.Namespace) -> None:
    """The surrogate-uncertainty flags that need each other, before any file is read."""
    kinds = args.surrogate_uncertainty or []
    if {"histosys", "shapesys"} & set(kinds) and not args.ensemble:
        raise InputError(
            f"--surrogate-uncertainty {','.join(kinds)} needs --ensemble DIR: the spread of the ensemble's member "
            "templates is what histosys/shapesys carry"
        )
    if "spurious" in kinds and args.spurious_size is None and not args.spurious_mc:
        raise InputError(
            "--surrogate-uncertainty spurious needs its size: --spurious-size MU (units of the signal strength) or "
            "--spurious-mc FILE (the MC background it is measured on)"
        )
    if not kinds and (args.ensemble or args.spurious_mc or args.spurious_size is not None):
        raise InputError("--ensemble, --spurious-mc and --spurious-size act through --surrogate-uncertainty KIND")


def _ensemble_spread(args: argparse.Namespace, nominal: Any, n_events: int) -> Any:
    """The spread of the ensemble's member templates of --var around ``nominal`` (loads torch)."""
    from ..ensemble import SurrogateEnsemble
    from ..io import read_events

    ens = SurrogateEnsemble.load(args.ensemble, device="cpu")
    if args.var not in ens.targets:
        raise InputError(
            f"--var {args.var!r} is not a target of the ensemble {args.ensemble} (its targets: {ens.targets}); the "
            "members must generate the fit variable"
        )
    conditions, n = None, args.ensemble_events or n_events
    if ens.conditions:
        if not args.ensemble_conditions:
            raise InputError(
                f"the ensemble {args.ensemble} is conditional on {ens.conditions}: pass --ensemble-conditions FILE"
            )
        conditions, n = read_events(args.ensemble_conditions, columns=ens.conditions), None
    return ens.spread(args.var, n, conditions, bins=nominal.axes[0], nominal=nominal, seed=args.modifier_seed)


def _surrogate_modifiers(
    args: argparse.Namespace, signal: Any, template: Any, n_events: int
) -> tuple[list[Any], dict[str, Any]]:
    """The modifiers --surrogate-uncertainty asks for, and what was measured for them (for the JSON)."""
    from ..stats import SurrogateUncertainty, fill_template, measure_spurious_signal, scale_template

    kinds = args.surrogate_uncertainty or []
    out: list[Any] = []
    info: dict[str, Any] = {}
    if {"histosys", "shapesys"} & set(kinds):
        spread = _ensemble_spread(args, template, n_events)
        info["ensemble_relative_std"] = spread.relative_std()
        if "histosys" in kinds:
            out.append(
                SurrogateUncertainty.histosys(spread, max_components=args.components, min_fraction=args.min_fraction)
            )
        else:
            out.append(SurrogateUncertainty.shapesys(spread))
    if "spurious" in kinds:
        if args.spurious_size is not None:
            size = args.spurious_size
        else:
            mc = _sample(args.spurious_mc, args.var, args.weight)
            mc_h = fill_template(mc.values, bins=template.axes[0], weights=mc.weights)
            unit = (
                scale_template(signal, total=args.signal_fraction * float(mc_h.values().sum()))
                if args.signal_fraction
                else signal
            )
            measured = measure_spurious_signal(unit, template, mc_h)
            info["spurious_signal"] = measured.to_dict()
            size = abs(measured.mu)
        out.append(SurrogateUncertainty.spurious(size))
    info["modifiers"] = [u.to_dict() for u in out]
    return out, info


# --out is checked (writable; empty unless --overwrite) and locked before any file is read, as in ``validate``; a
# command that fails before its first file is written leaves no empty --out (nor the parents made for it) behind
def cmd_fit(args: argparse.Namespace) -> int:
    _check_modifier_flags(args)
    with output_directory(args.out, overwrite=args.overwrite) as out:
        return _fit_into(args, out)


def cmd_scan(args: argparse.Namespace) -> int:
    _check_modifier_flags(args)
    with output_directory(args.out, overwrite=args.overwrite) as out:
        return _scan_into(args, out)


def cmd_coverage(args: argparse.Namespace) -> int:
    _check_modifier_flags(args)
    with output_directory(args.out, overwrite=args.overwrite) as out:
        return _coverage_into(args, out)


def _fit_into(args: argparse.Namespace, out: Path) -> int:
    from ..stats import Inference, asimov_counts, build_workspace, fill_template, model_and_data, scale_template
    from ..stats.jsonable import dumps

    binning = _binning(args)
    sig = _sample(args.signal, args.var, args.weight)
    bkg = _sample(args.background, args.var, args.weight)
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
    modifiers, modifier_info = _surrogate_modifiers(args, s, b, bkg.values.size)
    ws = build_workspace(
        s,
        b,
        observed,
        systematic=args.systematic,
        systematic_kind=args.systematic_kind,
        empty_bins=args.empty_bins,
        surrogate_uncertainty=modifiers or None,
    )
    model, data = model_and_data(ws)
    inf = Inference(model, data, test_stat=args.test_stat)
    fit, disc, limit = inf.mu_hat(), inf.discovery(), inf.upper_limit(args.level)
    result = {
        "mu_hat": fit.mu,
        "mu_sigma": fit.sigma,
        "mu_at_bound": fit.at_bound,
        "q0": disc.q0,
        "p0": disc.p0,
        "z0": disc.z0,
        "z_signed": disc.z_signed,
        "ul_observed": limit.observed,
        "ul_expected": dict(zip(("m2", "m1", "median", "p1", "p2"), limit.expected, strict=True)),
        "level": args.level,
        "test_stat": args.test_stat,
        "background_yield": b_yield,
        "signal_yield": float(s.values().sum()),
        "surrogate_uncertainty": modifier_info,
        "settings": _settings(args),
    }
    atomic_write_text(out / "workspace.json", dumps(dict(ws), indent=1))
    atomic_write_text(out / "fit.json", dumps(result, indent=1))
    capped = " (at the bound of its range: capped)" if fit.at_bound else ""
    print(
        f"mu_hat = {fit.mu:.4g} ± {fit.sigma:.3g}{capped}; Z0 = {disc.z_signed:+.3g} (p0 = {disc.p0:.3g}); "
        f"{1 - args.level:.0%} CLs limit ({args.test_stat}): observed {limit.observed:.4g}, expected "
        f"{limit.median:.4g} [{limit.expected[1]:.4g}, {limit.expected[3]:.4g}]"
    )
    if modifiers:
        print(f"surrogate modifiers in the workspace: {', '.join(n for u in modifiers for n in u.modifier_names())}")
    print(f"wrote {out / 'workspace.json'} (re-fit with pyhf alone) and {out / 'fit.json'}")
    return 0


def _scan_into(args: argparse.Namespace, out: Path) -> int:
    from ..stats import fill_template, rows_to_csv, save_scan_plots, scan, scan_summary
    from ..stats.jsonable import dumps

    binning = _binning(args)
    signal = _sample(args.signal, args.var, args.weight)
    generated = _sample(args.generated, args.var, args.weight)
    modifiers: list[Any] = []
    modifier_info: dict[str, Any] = {}
    if args.surrogate_uncertainty:
        sig_h = fill_template(signal.values, weights=signal.weights, name=args.var, **binning)
        gen_h = fill_template(generated.values, bins=sig_h.axes[0], weights=generated.weights)
        modifiers, modifier_info = _surrogate_modifiers(args, sig_h, gen_h, generated.values.size)
    rows = scan(
        signal,
        _sample(args.background, args.var, args.weight),
        generated,
        surrogate_uncertainty=modifiers or None,
        luminosities=args.lumis,
        n_generated=args.ngen,
        systematics=args.systematics,
        systematic_kind=args.systematic_kind,
        mu_injected=args.asimov_mu,
        signal_fraction=args.signal_fraction or None,
        level=args.level,
        test_stat=args.test_stat,
        empty_bins=args.empty_bins,
        on_error="raise" if args.fail_fast else "record",
        seed=args.seed,
        processes=args.processes,
        **binning,
    )
    atomic_write_text(
        out / "scan.json",
        dumps(
            {"settings": _settings(args), "surrogate_uncertainty": modifier_info, "rows": [r.to_dict() for r in rows]},
            indent=1,
        ),
    )
    atomic_write_text(out / "scan.csv", rows_to_csv(rows))
    figures = save_scan_plots(rows, out)
    fitted = [r for r in rows if r.status == "ok"]
    worst = max((r for r in fitted if r.template == "generated"), key=lambda r: abs(r.z_signed), default=None)
    print(scan_summary(rows))
    print(f"{len(rows)} scan points → {out / 'scan.json'}, {out / 'scan.csv'} and {len(figures)} figures")
    if worst is not None:
        print(
            f"largest spurious |Z0| = {abs(worst.z_signed):.3g} at luminosity {worst.luminosity:.3g}, "
            f"N_gen {worst.n_generated:,}, systematic {worst.systematic:.0%}"
        )
    return 0


def _coverage_into(args: argparse.Namespace, out: Path) -> int:
    from ..stats import coverage_study, fill_template, plot_coverage
    from ..stats.jsonable import dumps

    binning = _binning(args)
    signal = _sample(args.signal, args.var, args.weight)
    mc = _sample(args.background, args.var, args.weight)
    generated = _sample(args.generated, args.var, args.weight)
    sig_h = fill_template(signal.values, weights=signal.weights, name=args.var, **binning)
    mc_h = fill_template(mc.values, bins=sig_h.axes[0], weights=mc.weights)
    gen_h = fill_template(generated.values, bins=sig_h.axes[0], weights=generated.weights)
    n_generated = args.n_generated or generated.values.size
    modifiers, modifier_info = _surrogate_modifiers(args, sig_h, gen_h, n_generated)
    result = coverage_study(
        sig_h,
        mc_h,
        gen_h,
        surrogate_uncertainty=modifiers or None,
        luminosities=args.lumis,
        mu_true=args.asimov_mu,
        n_toys=args.toys,
        n_generated=n_generated,
        n_training=args.n_training,
        floors=not args.no_floors,
        limits=not args.no_limits,
        n_limit_toys=args.limit_toys,
        signal_fraction=args.signal_fraction or None,
        systematic=args.systematic,
        systematic_kind=args.systematic_kind,
        level=args.level,
        empty_bins=args.empty_bins,
        seed=args.seed,
        processes=args.processes,
    )
    report = result.to_dict() | {"surrogate_uncertainty": modifier_info, "command": _settings(args)}
    atomic_write_text(out / "coverage.json", dumps(report, indent=1))
    atomic_write_text(out / "toys.json", dumps({"toys": [t.to_dict() for t in result.toys]}, indent=None))
    atomic_write_text(out / "coverage.md", result.table() + "\n")
    fig = plot_coverage(result)
    fig.savefig(out / "coverage.png", dpi=120, bbox_inches="tight")
    print(result.table())
    if modifiers:
        print(
            "generated + modifier within 68 ± 3 % and 95 ± 2 % at every luminosity: "
            f"{'yes' if result.within('generated+modifier') else 'no'}"
        )
    print(
        f"{args.toys} toys × {len(args.lumis)} luminosities in {result.seconds:.0f} s → {out / 'coverage.json'}, "
        f"{out / 'toys.json'}, {out / 'coverage.md'}, {out / 'coverage.png'}"
    )
    return 0


def _modifier_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the surrogate's own uncertainty")
    g.add_argument(
        "--surrogate-uncertainty",
        type=_uncertainty_kinds,
        metavar="KIND[,KIND]",
        help="add the generated template's own uncertainty: histosys (the ensemble's spread as shape components + a "
        "per-bin residual) or shapesys (the spread per bin), and/or spurious (a signal-shaped nuisance of the "
        "spurious signal's size); comma-separated (default: none)",
    )
    g.add_argument(
        "--ensemble",
        type=_ensemble_dir,
        metavar="DIR",
        help="ensemble directory (SurrogateEnsemble.save) whose members generate --var; needed by histosys/shapesys",
    )
    g.add_argument(
        "--ensemble-conditions",
        metavar="FILE",
        help="events with the ensemble's condition columns (Parquet or ROOT), one generated event per row and member "
        "(needed for a conditional ensemble)",
    )
    g.add_argument(
        "--ensemble-events",
        type=event_count,
        help="events each member of an unconditional ensemble generates, ≥ 1 (default: as many as the generated sample)",
    )
    g.add_argument(
        "--components",
        type=positive_int,
        default=3,
        help="largest number of histosys shape components, integer ≥ 1 (default: 3)",
    )
    g.add_argument(
        "--min-fraction",
        type=open_fraction,
        default=0.95,
        help="fraction of the members' variance the shape components carry, in (0, 1); the rest becomes a per-bin "
        "residual (default: 0.95)",
    )
    g.add_argument(
        "--spurious-size",
        type=non_negative_float,
        metavar="MU",
        help="spurious-signal size in units of the signal strength μ, ≥ 0 (default: measured with --spurious-mc)",
    )
    g.add_argument(
        "--spurious-mc",
        metavar="FILE",
        help="MC background (Parquet or ROOT) on which the generated template's spurious signal is measured",
    )
    g.add_argument(
        "--modifier-seed",
        type=non_negative_int,
        default=0,
        help="seed of the ensemble's member samples, integer ≥ 0 (default: 0)",
    )


# ------------------------------------------------------------------------------------------------ parsers
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--var", required=True, help="fit-variable column, one number per event (its units, e.g. m_bb in GeV)"
    )
    p.add_argument(
        "--weight", help="event-weight column, expected events per unit luminosity (default: none, every weight 1)"
    )
    p.add_argument(
        "--bins", type=positive_int, default=25, help="number of regular bins over --range (integer ≥ 1; default: 25)"
    )
    binning = p.add_mutually_exclusive_group(required=True)
    binning.add_argument(
        "--range", type=_fit_range, metavar="LOW,HIGH", help="range of the regular bins, in the units of --var"
    )
    binning.add_argument(
        "--edges", type=_edges, metavar="E1,E2,…", help="explicit bin edges, in the units of --var (instead of --range)"
    )
    p.add_argument(
        "--signal-fraction",
        type=fraction,
        default=0.05,
        help="normalise the signal to this fraction of the background yield, in [0, 1]; 0: use the signal's "
        "weights × --lumi (default: 0.05)",
    )
    p.add_argument(
        "--asimov-mu",
        type=_finite_float,
        default=0.0,
        help="signal strength μ injected in the Asimov data, in units of the normalised signal (default: 0)",
    )
    p.add_argument(
        "--systematic-kind",
        default="normsys",
        choices=("normsys", "shapesys", "both", "none"),
        help="how the background systematic enters: normalisation (normsys), per bin (shapesys), both, or none "
        "(default: normsys)",
    )
    p.add_argument(
        "--empty-bins",
        default="error",
        choices=("error", "floor"),
        help="background bins without yield: stop with an error, or use a documented floor (default: error)",
    )
    p.add_argument(
        "--level",
        type=open_fraction,
        default=0.05,
        help="CLs level α, in (0, 1): the limit is at 1 − α confidence (default: 0.05, i.e. 95 %% CL)",
    )
    p.add_argument(
        "--test-stat",
        default="qtilde",
        choices=("qtilde", "q"),
        help="test statistic of the CLs limits, as pyhf's hypotest: qtilde (μ̂ ≥ 0) or q (default: qtilde)",
    )
    p.add_argument("--out", required=True, help="output directory (refused if it exists and is not empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output directory (default: refuse)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="pyhf fit: μ̂ ± σ, discovery Z0, CLs upper limit with bands; exports the workspace",
        description="Fill templates of --var from SIGNAL and BACKGROUND, build a HistFactory workspace "
        "(normfactor μ, background systematic, staterror), fit the observed data or "
        "the Asimov data, and write workspace.json and fit.json.",
    )
    p.add_argument("signal", help="signal sample (Parquet or ROOT file)")
    p.add_argument("background", help="background template sample (MC or generated; Parquet or ROOT file)")
    p.add_argument(
        "--observed",
        help="sample whose histogram is the observation (default: the Asimov data μ·s + b of the templates)",
    )
    p.add_argument(
        "--lumi",
        type=positive_float,
        default=1.0,
        help="luminosity factor multiplying the background (and, with --signal-fraction 0, signal) weights; "
        "number > 0 (default: 1)",
    )
    p.add_argument(
        "--systematic",
        type=_relative_uncertainty,
        default=0.10,
        help="relative background systematic in [0, 1), 0.10 = 10 %% (default: 0.10)",
    )
    _common(p)
    _modifier_flags(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "scan",
        help="μ̂, spurious Z0 and CLs limits vs luminosity, N_gen and systematic (paper B)",
        description="Asimov data from MC signal + MC background; templates from the MC background "
        "(reference) and from N_gen generated events; writes scan.json, scan.csv and "
        "the figures. A point that cannot be fitted is recorded (status 'failed' and its reason) and the "
        "scan carries on; the summary line says how many failed.",
    )
    p.add_argument("signal", help="MC signal sample (Parquet or ROOT file)")
    p.add_argument("background", help="MC background (defines the data and the reference template)")
    p.add_argument("generated", help="generated background (its first N_gen events make each template)")
    p.add_argument(
        "--lumis",
        type=_luminosities,
        default=_luminosities("1:1000:10"),
        metavar="L1,L2,… | LOW:HIGH:N",
        help="luminosity factors (× the MC sample's), a list or N log-spaced (default: 1:1000:10)",
    )
    p.add_argument(
        "--ngen",
        type=_event_counts,
        default=_event_counts("1000:100000:10"),
        metavar="N1,N2,… | LOW:HIGH:N",
        help="numbers of generated events per template, a list or N log-spaced (default: 1000:100000:10)",
    )
    p.add_argument(
        "--systematics",
        type=_relative_uncertainties,
        default=[0.05, 0.10, 0.20],
        metavar="S1,S2,…",
        help="relative background systematics, each in [0, 1) (default: 0.05,0.10,0.20)",
    )
    p.add_argument(
        "--processes", type=positive_int, default=1, help="worker processes for the scan points (default: 1)"
    )
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first point that cannot be fitted (default: record it and carry on)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the permutation that picks the N_gen events, integer ≥ 0 (default: 0)",
    )
    _common(p)
    _modifier_flags(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser(
        "coverage",
        help="coverage of the intervals on μ by toys: generated template with and without the surrogate modifier, "
        "next to the perfect generator and the memorising learner",
        description="Toy data from the MC background's shape at each luminosity, fitted with templates drawn from "
        "GENERATED (without and with --surrogate-uncertainty), a perfect generator and, with --n-training, a "
        "memorising learner (the toys' signal strength: --asimov-mu); writes coverage.json (the coverage of the 68/95 % intervals, pulls, |Z0|, "
        "expected-limit shifts per luminosity and template), toys.json, coverage.md (the table) and coverage.png.",
    )
    p.add_argument("signal", help="MC signal sample (Parquet or ROOT file)")
    p.add_argument("background", help="MC background: its shape is the truth the toys are drawn from")
    p.add_argument(
        "generated",
        help="a large generated sample: the flow's shape, from which every toy draws a template of --n-generated events",
    )
    p.add_argument(
        "--lumis",
        type=_luminosities,
        default=_luminosities("1:1000:10"),
        metavar="L1,L2,… | LOW:HIGH:N",
        help="luminosity factors (× the MC sample's), a list or N log-spaced (default: 1:1000:10)",
    )
    p.add_argument("--toys", type=positive_int, default=200, help="toys per luminosity, integer ≥ 1 (default: 200)")
    p.add_argument(
        "--n-generated",
        type=event_count,
        help="events per generated (and floor) template, ≥ 1 (default: the generated sample's size)",
    )
    p.add_argument(
        "--n-training",
        type=event_count,
        help="training-MC events of the memorising-learner floor, ≥ 1 (default: no learner floor)",
    )
    p.add_argument("--no-floors", action="store_true", help="skip the perfect-generator and learner floors")
    p.add_argument("--no-limits", action="store_true", help="skip the expected-limit shifts (faster)")
    p.add_argument(
        "--limit-toys",
        type=non_negative_int,
        default=20,
        help="floor templates whose expected limits give the floors' limit-shift band, integer ≥ 0 (default: 20)",
    )
    p.add_argument(
        "--systematic",
        type=_relative_uncertainty,
        default=0.10,
        help="relative background systematic in [0, 1), 0.10 = 10 %% (default: 0.10)",
    )
    p.add_argument(
        "--processes", type=positive_int, default=1, help="worker processes for the toys, integer ≥ 1 (default: 1)"
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the toys (data, templates, floors), integer ≥ 0 (default: 0)",
    )
    _common(p)
    _modifier_flags(p)
    p.set_defaults(func=cmd_coverage)
