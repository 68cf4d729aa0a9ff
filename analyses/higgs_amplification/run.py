"""Paper B end to end on the HIGGS-like benchmark: model comparison, amplification, validation, pyhf scans and
effective statistics (``mcsurrogate.workflows.amplification_study``; its docstring has every step and seed).

    python analyses/higgs_amplification/run.py --out reports/amp [--small] [--cache DIR] [--workers 2] [--samples-only]
    python analyses/higgs_amplification/run.py --out reports/amp2 --model reports/amp/best_model   # re-analyse

1. **Samples.** t t̄ background and the heavy-Higgs signal from Pythia 8 + FastJet + the parametric detector,
   cached in ``--cache`` as ``{process}_n{N}_seed{S}_chunk{C}.parquet`` (a larger cached run is re-used, a smaller
   one continued; ``--samples-only`` stops here). Default: 10⁶ background and 2 × 10⁵ signal events (hours on 2
   cores, once).
2. **Splits.** Background: 50 % held out, 10 % model selection, 40 % training. Signal: half trains the signal
   classifier, half makes the signal template.
3. **Model comparison** on the 18 continuous features: six flow families × (logit + standardise, Gauss-rank),
   scored on the selection split; the best by C2ST AUC is the amplifier. ``--condition-on-btags``: every flow is
   conditioned on the four b-tags; ``--mass-differences`` / ``--jet-pt-differences``: the flows learn
   ``amplification.MASS_DIFFERENCES`` / ``JET_PT_DIFFERENCES`` instead of the columns they replace. ``--model DIR``
   re-uses the ``best_model`` of an earlier run on the same samples and seed. Checkpoints in
   ``OUT/checkpoints/<name>``: the same command started again after a kill resumes each training.
4. **Amplification**: the best model generates ``--amplification`` × the training MC; validation against the
   held-out MC. ``--reweight``: every generated event carries the classifier weight p_MC/p_gen (ELSA's first step).
5. **Classifier-cut analysis** (paper B §5): signal classifier on MC signal vs generated background
   (``--classifier-background mc``: vs the training MC), selection at score > ``--threshold``, fit in m_bb, pyhf
   scans versus luminosity, N_gen and systematic; the quality bars with their MC-statistics floors (toys).
6. **Effective statistics**: MC-equivalent events of generated m_bb templates after the cut, versus their size.

Writes ``report.json`` (every number plotted), ``report.md``, PNG figures, the best model and the scan tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import textwrap
from pathlib import Path

from mcsurrogate.amplification import FAMILY_OPTIONS, PAPER_B_FAMILIES
from mcsurrogate.cli.arguments import event_count, open_fraction, positive_float, positive_int
from mcsurrogate.errors import MCSurrogateError, sigterm_raises
from mcsurrogate.workflows.amplification_study import FULL, SMALL, run_study, samples_only

log = logging.getLogger("higgs_amplification")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--small", action="store_true", help="small samples and models: ~15 min on 2 cores")
    ap.add_argument("--cache", type=Path, default=FULL.cache, help="where generated MC is kept")
    ap.add_argument("--workers", type=positive_int, default=FULL.workers, help="Pythia processes")
    ap.add_argument("--n-background", type=event_count)
    ap.add_argument("--n-signal", type=event_count)
    ap.add_argument(
        "--families", default=",".join(PAPER_B_FAMILIES), help=f"comma-separated, of {', '.join(FAMILY_OPTIONS)}"
    )
    ap.add_argument("--preprocessings", default=",".join(FULL.preprocessings))
    ap.add_argument("--blocks", type=positive_int)
    ap.add_argument("--hidden", type=positive_int)
    ap.add_argument("--epochs", type=positive_int)
    ap.add_argument(
        "--ema-decay", type=open_fraction, help="exponential moving average of the weights per step (e.g. 0.999)"
    )
    ap.add_argument(
        "--condition-on-btags",
        action="store_true",
        help="condition every flow on the four b-tags, drawn from the training MC when generating",
    )
    ap.add_argument(
        "--mass-differences",
        action="store_true",
        help="flows learn each mass minus its subsystems' (amplification.MASS_DIFFERENCES), keeping kinematic edges",
    )
    ap.add_argument(
        "--jet-pt-differences",
        action="store_true",
        help="flows learn jet4_pt and each jet's p_T minus the next one's (amplification.JET_PT_DIFFERENCES)",
    )
    ap.add_argument(
        "--model",
        type=Path,
        help="re-use a model directory of an earlier run (its best_model) instead of the comparison (step 3)",
    )
    ap.add_argument(
        "--amplification", type=positive_float, default=FULL.amplification, help="generated / training MC events"
    )
    ap.add_argument(
        "--reweight",
        action="store_true",
        help="weight the generated events by a classifier density ratio learned against the training MC (ELSA)",
    )
    ap.add_argument(
        "--permutations", type=positive_int, default=FULL.permutations, help="label permutations of C2ST p-values"
    )
    ap.add_argument(
        "--threshold", type=open_fraction, default=FULL.threshold, help="selection on the signal-classifier score"
    )
    ap.add_argument(
        "--classifier-background",
        choices=("generated", "mc"),
        default=FULL.classifier_background,
        help="background of the signal classifier: generated events (paper B) or the training MC, so that the cut "
        "is not tuned to where the generator under-populates",
    )
    ap.add_argument("--seed", type=int, default=FULL.seed)
    ap.add_argument("--samples-only", action="store_true", help="generate (or continue) the cached samples, then stop")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("pyhf").setLevel(logging.WARNING)
    given = {
        "n_background": args.n_background,
        "n_signal": args.n_signal,
        "blocks": args.blocks,
        "hidden": args.hidden,
        "epochs": args.epochs,
        "ema_decay": args.ema_decay,
        "model": args.model,
    }
    differences = [name for name, on in (("masses", args.mass_differences), ("jet-pt", args.jet_pt_differences)) if on]
    try:
        config = dataclasses.replace(
            SMALL if args.small else FULL,
            **{k: v for k, v in given.items() if v is not None},
            families=tuple(args.families.split(",")),
            preprocessings=tuple(args.preprocessings.split(",")),
            condition_on_btags=args.condition_on_btags,
            differences=tuple(differences),
            amplification=args.amplification,
            reweight=args.reweight,
            permutations=args.permutations,
            threshold=args.threshold,
            classifier_background=args.classifier_background,
            seed=args.seed,
            cache=args.cache,
            workers=args.workers,
            mode="small" if args.small else ("full" if args.n_background is None else "custom"),
        )
        if args.samples_only:
            bkg, sig = samples_only(config)
            log.info("samples ready in %s: %s, %s", args.cache, bkg.file, sig.file)
            return 0
        command = "python analyses/higgs_amplification/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
        run_study(config, args.out, command=command)
    except MCSurrogateError as exc:
        print(textwrap.fill(f"error: {exc}", width=100), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    with sigterm_raises():  # a batch kill unwinds: half-written outputs are deleted, exit code 143
        sys.exit(main())
