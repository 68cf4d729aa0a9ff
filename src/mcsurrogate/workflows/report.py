"""The human reports (Markdown) of paper B's amplifier studies, from the numbers their ``report.json`` holds: the
whole study (:func:`amplification_markdown`) and the learning curve (:func:`learning_curve_markdown`). Figures are
linked by their file names in the same folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..amplification import AucPowerLaw, Candidate, ComparisonRow

__all__ = ["amplification_markdown", "learning_curve_markdown"]


def amplification_markdown(r: Mapping[str, Any]) -> str:
    """``report.md`` of :func:`~mcsurrogate.workflows.amplification_study.run_study` from its ``report.json``
    content ``r``: tables of the comparison, the validation, the quality bars, and the figures."""
    lines = [
        "# HIGGS-like amplification study (paper B)",
        "",
        f"Command: `{r['command']}`  ",
        (
            f"Samples: {r['samples']['background']['n_events']:,} t t̄ and {r['samples']['signal']['n_events']:,} signal "
            f"events; background splits {r['samples']['splits']}. Wall time {r['timings']['total_s'] / 60:.1f} min."
        ),
        "",
    ]
    if r["comparison"]:
        lines += [
            "## Model comparison (selection split, never used for training)",
            "",
            "| model | parameters | epochs (best) | NLL | C2ST AUC [95 % CI] | p | max W1/base | median W1/base | FPD (base) | train ev/s | sample ev/s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in r["comparison"]:
            if c["failure"]:
                lines.append(f"| {c['name']} | — | failed to train: {c['failure']} | | | | | | | | |")
                continue
            nll = f"{c['nll']:.3f}" if abs(c["nll"]) < 1e6 else f"{c['nll']:.3g}"  # a flow whose z overflowed
            resumed = c.get("resumed_from_epoch", 0)
            if resumed and resumed >= c["epochs_run"]:  # trained by an earlier run of the same command
                speed = "trained before a restart"
            else:
                speed = f"{c['train_events_per_second']:,.0f}" + (f" (from epoch {resumed})" if resumed else "")
            lines.append(
                f"| {c['name']} | {c['parameters']:,} | {c['epochs_run']} ({c['best_epoch']}) | {nll} | "
                f"{c['auc']:.4f} [{c['auc_ci'][0]:.4f}, {c['auc_ci'][1]:.4f}] | {c['p_value']:.2g} | "
                f"{c['w1_ratio_max']:.2f} | {c['w1_ratio_median']:.2f} | {c['fpd']:.2g} ({c['fpd_baseline']:.2g}) | "
                f"{speed} | {c['sample_events_per_second']:,.0f} |"
            )
        lines += [
            "",
            (
                f"Best: **{r['best_model']}**. ![comparison](comparison.png) ![W1 matrix](comparison_w1.png) "
                "![training](training.png)"
            ),
        ]
    else:  # --model without the comparison that chose it
        trained_by = r["training"].get("trained_by")
        lines += [
            "## Model",
            "",
            (
                f"Re-used with `--model`: **{r['best_model']}** (no comparison.json beside it"
                + (f"; trained by `{trained_by}`" if trained_by else "")
                + "). ![training](training.png)"
            ),
        ]
    v = r["validation"]
    amp = r["amplification"]
    cc = r["classifier_cut"]["crosscheck"]
    lines += [
        "",
        "## Amplification and validation against held-out MC",
        "",
        (
            f"{amp['n_generated']:,} events generated ({amp['factor']:g} × the {amp['n_train']:,} training events) at "
            f"{amp['sample_events_per_second']:,.0f} events/s. C2ST AUC {v['c2st']['auc']:.4f} "
            f"[{v['c2st']['auc_ci'][0]:.4f}, {v['c2st']['auc_ci'][1]:.4f}], p = {v['c2st']['p_value']:.3g}; "
            f"flagged features: {', '.join(v['flagged_features']) or 'none'}. Full report: [validation/](validation/index.html)."
        ),
        *(
            [
                "",
                (
                    f"Weighted generated events (`--reweight`): w(x) = p_MC/p_gen from "
                    f"{rw['density_ratio']['folds']} cross-fitted boosted-tree classifiers of the "
                    f"{rw['n_reference']:,} training MC events against {rw['n_generated']:,} other generated ones "
                    f"(clipped to [1/{rw['clip']:g}, {rw['clip']:g}]); weights 1 % / 50 % / 99 %: "
                    + " / ".join(f"{q:.2f}" for q in rw["weight_quantiles"].values())
                    + f"; Kish efficiency {rw['kish_efficiency_amplified']:.3f}. The validation above and every "
                    "number below use the weights."
                ),
            ]
            if (rw := r.get("reweighting"))
            else []
        ),
        "",
        "## Classifier-cut analysis",
        "",
        (
            f"Signal classifier trained against {r['classifier_cut']['classifier_background_events']:,} "
            + ("training-MC" if r["classifier_cut"].get("classifier_background") == "mc" else "generated")
            + " background events. "
            f"Selection efficiency on background: generated {cc['efficiency_generated']:.4f} ± "
            f"{cc['efficiency_generated_error']:.4f}, held-out MC {cc['efficiency_mc']:.4f} ± {cc['efficiency_mc_error']:.4f} "
            f"(pull {cc['efficiency_pull']:.2f}); post-cut m_bb shape χ²/ndf = {cc['shape_chi2']:.1f}/{cc['shape_ndf']} "
            f"(p = {cc['shape_chi2_pvalue']:.3g})."
        ),
        "",
        (
            "![mu bias](scan/mu_bias_vs_lumi_syst10.png) ![Z0](scan/z0_vs_lumi_syst10.png) "
            "![UL](scan/ul_vs_lumi_syst10.png) ![dUL](scan/delta_ul_vs_ngen.png)"
        ),
        "",
        "## Effective statistics (post-cut m_bb)",
        "",
        (
            f"A generated template is worth at most ≈ {worth:,.0f} MC events (median over bins of p(1−p)/bias²)."
            if (worth := r["effective_statistics"]["worth"]) is not None
            else "In the median bin the generated template's bias is below what the MC resolves: no saturation "
            "measured (per-bin p(1−p)/bias² in report.json, `effective_statistics.n_eff_max`)."
        )
        + " ![N_eff](effective_statistics.png)",
        "",
        "## Quality bars",
        "",
        "| bar | value | holds |",
        "| --- | --- | --- |",
    ]
    for name, bar in r["quality_bars"].items():
        lines.append(f"| {name} | {bar['value']:.4g} | {'yes' if bar['holds'] else 'no'} |")
    floor = r["quality_bars"]["spurious_z0_below_1_at_10pct"].get("perfect_generator", {})
    if floor.get("n_toys"):
        lines += [
            "",
            (
                f"A perfect generator of as many events, against this much held-out MC, would show a largest "
                f"|Z₀| of {floor['max_abs_median']:.2f} (median; 84 %: {floor['max_abs_q84']:.2f}, 95 %: "
                f"{floor['max_abs_q95']:.2f}) over the luminosity scan, and pass the |Z₀| < 1 bar in "
                f"{floor['fraction_below_1']:.0%} of {floor['n_toys']} toys: the MC statistics floor of that bar. "
                "![floor](spurious_signal_floor.png) ![post-cut shapes](post_cut_shapes.png)"
            ),
        ]
    floor = r["quality_bars"]["ul_shift_within_mc_1sigma"].get("perfect_generator_at_10pct", {})
    if floor.get("n_toys"):
        lines += [
            "",
            (
                f"Its expected limit would move by up to {floor['max_abs_median']:.2f} of the MC template's ±1σ "
                f"half band (median over toys; 84 %: {floor['max_abs_q84']:.2f}; 10 % systematic) and pass the "
                f"limit-shift bar in {floor['fraction_below_1']:.0%} of {floor['n_toys']} toys: a larger template "
                "has a smaller staterror, so where the MC's own statistics limit the MC reference a correct "
                "generator lowers the expected limit by more than the band. "
                "![limit-shift floor](limit_shift_floor.png)"
            ),
        ]
    z_learner = r["quality_bars"]["spurious_z0_below_1_at_10pct"].get("memorising_learner", {})
    ul_learner = r["quality_bars"]["ul_shift_within_mc_1sigma"].get("memorising_learner_at_10pct", {})
    if z_learner.get("n_toys") and ul_learner.get("n_toys"):
        n_train_cut = r["classifier_cut"]["selected"]["mc_training"]
        lines += [
            "",
            (
                f"A generator that reproduced its training MC exactly ({n_train_cut:,} training events pass the cut) "
                f"would carry that sample's fluctuations into every template: largest |Z₀| "
                f"{z_learner['max_abs_median']:.2f} (median; 84 %: {z_learner['max_abs_q84']:.2f}), largest limit "
                f"shift {ul_learner['max_abs_median']:.2f} (84 %: {ul_learner['max_abs_q84']:.2f}) half bands, "
                f"passing the two bars in {z_learner['fraction_below_1']:.0%} and "
                f"{ul_learner['fraction_below_1']:.0%} of {z_learner['n_toys']} toys (dashed lines in the two "
                "figures above): the floor of a generator limited by its training statistics. A flow that smooths "
                "can do better where the shape is smooth; one with a bias does worse."
            ),
        ]
    return "\n".join(lines) + "\n"


def learning_curve_markdown(
    report: Mapping[str, Any], candidate: Candidate, rows: Sequence[ComparisonRow], law: AucPowerLaw | None
) -> str:
    """``report.md`` of a learning curve: the ``candidate``'s ``rows`` (one per training size, from
    :func:`~mcsurrogate.amplification.learning_curve`), the power ``law`` fitted to them (``None``: too few
    points) and what ``report`` (the script's ``report.json`` content: ``command``, ``device``,
    ``c2st_events_per_class``, ``wall_s``, ``target_auc``, ``n_train_for_target`` and its ±1σ band) says."""
    target = report["target_auc"]
    reach = report["n_train_for_target"]
    band = report["n_train_for_target_1sigma"]
    lines = [
        "# Learning curve of the amplifier",
        "",
        f"Command: `{report['command']}`  ",
        (
            f"{candidate.name} ({candidate.flow['blocks']} × {candidate.flow['hidden']}, "
            f"{candidate.flow['activation']}); trained on {report['device']}; C2ST with "
            f"{report['c2st_events_per_class']:,} held-out events per class; wall time {report['wall_s'] / 60:.1f} min."
        ),
        "",
        "| training events | epochs (best) | converged | NLL | C2ST AUC [95 % CI] | max W1/base | train s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r.extra['n_train']:,} | {r.epochs_run} ({r.best_epoch}) | {'yes' if r.converged else 'no'} "
            f"| {r.nll:.3f} | {r.auc:.4f} [{r.auc_ci[0]:.4f}, {r.auc_ci[1]:.4f}] | {r.w1_ratio_max:.2f} "
            f"| {r.train_seconds:.0f} |"
            for r in rows
        ),
        "",
    ]
    if law is not None:
        lines.append(
            f"Power law: AUC − 0.5 = {law.amplitude:.4f} (n/10⁴)^−({law.exponent:.3f} ± {law.exponent_error:.3f}), "
            f"χ²/ndf = {law.chi2:.2f}/{law.ndf}; AUC {target} at n ≈ {reach:.3g} training events "
            f"(±1σ: {band[0]:.3g} – {band[1]:.3g}), an extrapolation beyond the largest size measured."
            + (
                ""
                if all(r.converged for r in rows)
                else " Points still improving at their last epoch (open markers) lie above a converged curve: "
                "more epochs would lower them, so the extrapolation holds for this training length, not for the "
                "model trained to convergence."
            )
        )
    lines += ["", "![learning curve](learning_curve.png)", ""]
    return "\n".join(lines)
