"""Docs that run: every ```python block of README.md and docs/**/*.md, and every docstring example in src/.

Each page's blocks run in order in one namespace, in a fresh temporary directory, on tiny real inputs:

* **Input files** the pages read (``truth.parquet``, ``ttbar_mc.parquet``, ``mc.root``, …) are made by
  :class:`_Inputs` with the project's own generators and writers (Pythia 8 through
  ``generate_higgs_benchmark``, the packaged Pythia truth sample, ``write_events``): real Parquet and ROOT files,
  built once per session and only for the pages that ask for them (:data:`FILES`).
* **Sizes** stay as the docs show them (``"epochs": 200``, ``1_000_000`` events); :data:`SUBSTITUTIONS` replaces
  each such literal with a tiny value before the page runs, and every entry must match the page (a stale entry
  fails the test, so the table cannot drift from the docs).
* **What a page takes as given** (``events`` "any awkward record array with a truth collection", ``ens`` an
  ensemble made above on the page, a model directory trained on another page) is set up by the code in
  :data:`GIVEN`, run before the page's first block; each entry names what the page's prose says it is.
* A block preceded by ``<!-- no-run: reason -->`` is not run; :data:`NOT_RUN` lists every such block, so adding one
  is a reviewed decision (they are for blocks that need a batch cluster, a GPU or hours, never for wrong ones).

The heaviest pages are marked ``slow``; README.md runs in the default selection.
"""

from __future__ import annotations

import doctest
import importlib
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mcsurrogate"
FENCE = re.compile(r"^```python\s*$")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*(?P<reason>\S.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One ```python block: the page, the line of its opening fence (1-based), its code, why it is not run."""

    page: str
    line: int
    code: str
    no_run: str | None


def page_blocks(page: str) -> list[Block]:
    """The ```python blocks of ``page`` (a path relative to the repository root), in order."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marker = NO_RUN.match(lines[i - 1]) if i else None
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(page, i + 1, code, marker.group("reason") if marker else None))
            i = end
        i += 1
    return blocks


def doc_pages() -> list[str]:
    """README.md and every Markdown page under docs/ that holds a ```python block."""
    pages = ["README.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md")))]
    return [p for p in pages if page_blocks(p)]


# -- sizes: the docs' literal values -> tiny ones ---------------------------------------------------------------
#: per page, (literal as the docs show it, what runs in the test); each must occur in a runnable block of its page
SUBSTITUTIONS: dict[str, list[tuple[str, str]]] = {
    "README.md": [
        ("train_response(smeared)", 'train_response(smeared, training={"epochs": 2})'),  # preset: 24 epochs
        ('"epochs": 200', '"epochs": 2'),
        ("bins=25", "bins=5"),  # 25 bins of 20 GeV leave bins of the tiny held-out MC empty
    ],
    "docs/amplification.md": [
        ('"epochs": 100', '"epochs": 2'),
        ('flow={"model": "made-mog"},', 'flow={"model": "made-mog"}, training={"epochs": 2},'),  # default: 50 epochs
        ("bins=25", "bins=5"),
        ("np.geomspace(1, 100, 10)", "np.geomspace(1, 100, 2)"),
        ("np.geomspace(1e3, 1e7, 10)", "np.geomspace(1e3, 4e3, 2)"),
        ("np.linspace(0, 500, 26)", "np.linspace(0, 500, 6)"),
        ("sizes=[1_000, 10_000, 100_000, 1_000_000]", "sizes=[500, 1_000, 2_000]"),
        ("[10_000, 20_000, 40_000, 80_000]", "[120, 180, 240]"),
        ('"epochs": 200', '"epochs": 2'),
        ("blocks=30, hidden=512", "blocks=2, hidden=16"),
        ('"epochs": 203', '"epochs": 1'),
        ("fit_surrogate_reweighting(model, train, seed=7)", "fit_surrogate_reweighting(model, train, seed=7, folds=2)"),
        ("folds=5", "folds=2"),  # five cross-fitted boosted-tree classifiers -> two
    ],
    "docs/statistics.md": [
        ("bins=25", "bins=5"),
        ("np.geomspace(1, 1000, 10)", "np.geomspace(1, 1000, 2)"),
        ("np.geomspace(1e3, 1e7, 10)", "np.geomspace(1e3, 4e3, 2)"),
        ("systematics=(0.05, 0.10, 0.20)", "systematics=(0.10,)"),
        ("processes=2", "processes=1"),
        ("n_generated=165_878", "n_generated=2_000"),
        ("n_training=20_000", "n_training=500"),
        ("n_toys=20", "n_toys=2"),
    ],
    "docs/api/ensemble.md": [('"epochs": 50', '"epochs": 2'), ("k=5", "k=2"), ("bins=25", "bins=5")],
    "docs/api/surrogate.md": [('"epochs": 50', '"epochs": 2')],
    "docs/columnar.md": [("1_000_000_000, 1000", "2_000, 2")],
    "docs/detector_response.md": [
        ("train_response(training_events)", 'train_response(training_events, training={"epochs": 2})'),
        ('{"pairs": 2_000_000, "epochs": 20}', '{"pairs": 2_000, "epochs": 1}'),
    ],
    "docs/generation.md": [("50_000, seed=1", "20, seed=1"), ("200_000", "50")],
    "docs/higgs_benchmark.md": [
        ("2_000", "40"),
        ("chunk_size=1_000", "chunk_size=20"),
        ("1_000_000", "40"),
        ("n_workers=16", "n_workers=1"),
        ("chunk_size=5_000", "chunk_size=20"),
    ],
    "docs/object_response.md": [('training={"epochs": 12}', 'training={"epochs": 1}')],
    "docs/weighted_mc.md": [("30_000", "100")],
}

#: per page, {name the page reads: the :class:`_Inputs` file copied there} into the page's working directory
FILES: dict[str, dict[str, str]] = {
    "README.md": {
        "truth.parquet": "truth.parquet",
        "new_truth.root": "new_truth.root",
        "ttbar_mc.parquet": "ttbar_mc.parquet",
        "signal_mc.parquet": "signal_mc.parquet",
    },
    "docs/amplification.md": {"ttbar_mc.parquet": "ttbar_mc.parquet", "signal_mc.parquet": "signal_mc.parquet"},
    "docs/statistics.md": {"mc.root": "mc.root", "signal_mc.parquet": "signal_mc.parquet"},
    "docs/api/ensemble.md": {"mc.root": "mc.root"},
    "docs/api/surrogate.md": {"mc.root": "mc.root"},
    "docs/columnar.md": {"truth.parquet": "truth.parquet", "mc.root": "mc.root"},
    "docs/detector_response.md": {"smeared.parquet": "smeared.parquet", "new_truth.root": "new_truth.root"},
    "docs/export.md": {"mc.root": "mc.root"},
    "docs/object_response.md": {"truth.parquet": "all_photons_truth.parquet"},
    "docs/validation.md": {"mc.root": "mc.root"},
    "docs/weighted_mc.md": {"mc.parquet": "weighted_mc.parquet"},
}

#: per page, code that sets up what the page's prose takes as given, run before its first block
GIVEN: dict[str, str] = {
    "docs/statistics.md": """
        # "ens: an ensemble of m_bb given mu, mc the events it was trained on; signal, template, mc_template,
        # big_generated: hist templates of one binning; observed: counts" (5 bins: SUBSTITUTIONS' bins=25 -> 5)
        import numpy as np
        from mcsurrogate import Surrogate, read_events
        from mcsurrogate.ensemble import SurrogateEnsemble
        from mcsurrogate.stats import asimov_counts, fill_template, scale_template

        mc = read_events("mc.root:events")
        proto = Surrogate(["m_bb"], ["mu"], flow={"model": "maf", "blocks": 1, "hidden": 8}, training={"epochs": 2})
        ens = SurrogateEnsemble.fit(proto, mc, k=3, mode="both", seed=1, progress=False)
        sig_mbb = np.asarray(read_events("signal_mc.parquet").m_bb)
        mc_mbb = np.asarray(mc.m_bb)
        gen_mbb = np.asarray(ens.sample(conditions=mc[np.arange(20 * len(mc)) % len(mc)], seed=2).m_bb)
        edges = np.linspace(0, 500, 6)  # GeV
        signal = scale_template(fill_template(sig_mbb, bins=edges), total=0.05 * len(mc_mbb))
        mc_template = fill_template(mc_mbb, bins=edges)
        template = scale_template(fill_template(gen_mbb[: 4 * len(mc_mbb)], bins=edges), total=len(mc_mbb))
        big_generated = scale_template(fill_template(gen_mbb, bins=edges), total=len(mc_mbb))
        observed = asimov_counts(signal, mc_template)

        # "sig_sr, tt_sr, other_sr (other_up, other_down), tt_cr, other_cr: hist templates of each region's binning
        # (sr_edges, cr_edges); n_sr, n_cr: observed counts; spread_sr: an ensemble's spread in the signal region"
        sr_edges, cr_edges = edges, np.linspace(0, 300, 4)  # m_bb and E_T^miss, GeV
        sig_sr, tt_sr = signal, template
        other_sr = scale_template(mc_template, factor=0.3)
        other_up, other_down = scale_template(other_sr, factor=1.1), scale_template(other_sr, factor=0.9)
        spread_sr = ens.spread("m_bb", conditions=mc, bins=sr_edges, nominal=tt_sr, progress=False)
        tt_cr = fill_template(np.asarray(mc.met), bins=cr_edges)
        other_cr = scale_template(tt_cr, factor=0.3)
        n_sr = np.asarray(signal.values() + mc_template.values() + other_sr.values())
        n_cr = np.round(1.1 * tt_cr.values() + other_cr.values())
    """,
    "docs/columnar.md": """
        # "events: any awkward record array with a truth collection (pt in GeV, eta, phi) and a pile-up field, e.g.
        # coffea NanoEvents"; "response_model/": a response surrogate (README, detector response);
        # "background_model/": an unconditional surrogate of the background's m_bb
        import awkward as ak
        from mcsurrogate import Surrogate, read_events
        from mcsurrogate.response import smear_photons, train_response

        truth = read_events("truth.parquet")
        events = ak.zip({"GenPhoton": truth.photons, "Pileup": ak.zip({"nTrueInt": truth.mu})}, depth_limit=1)
        train_response(smear_photons(truth, seed=1), training={"epochs": 1}, progress=False).save("response_model")
        flow = {"model": "maf", "blocks": 1, "hidden": 8}
        mc = read_events("mc.root:events")
        Surrogate(["m_bb"], flow=flow, training={"epochs": 1}).fit(mc, progress=False).save("background_model")
    """,
    "docs/export.md": """
        # "model-dir": a saved surrogate with one condition (the page's mu column); maf exports to ONNX as well
        from mcsurrogate import Surrogate, read_events

        flow = {"model": "maf", "blocks": 2, "hidden": 16}
        model = Surrogate(["m_bb", "met"], ["mu"], flow=flow, training={"epochs": 1})
        model.fit(read_events("mc.root:events"), progress=False).save("model-dir")
    """,
    "docs/higgs_benchmark.md": """
        # "ttbar_n200000.parquet": an earlier run of the same seed and chunk size, here one chunk of 20 events
        from mcsurrogate.generators.higgs_benchmark import generate_higgs_benchmark

        generate_higgs_benchmark("ttbar", 20, "ttbar_n200000.parquet", seed=1, chunk_size=20, progress=False)
    """,
    "docs/object_response.md": """
        # "events": full simulation as an analysis has it: truth (GenPhoton, truth_photons, GenPart) and reco
        # (Photon, photons) collections, pile-up (mu, Pileup.nTrueInt); "truth_events": truth photons and mu
        import awkward as ak
        from mcsurrogate import read_events
        from mcsurrogate.response import reconstruct_photons

        sim = reconstruct_photons(read_events("truth.parquet"), seed=1, collection="all_photons")
        gen = sim.truth_photons
        events = ak.zip(
            {
                "truth_photons": gen, "photons": sim.photons, "mu": sim.mu, "GenPhoton": gen, "Photon": sim.photons,
                "GenPart": ak.zip({"pt": gen.pt, "eta": gen.eta, "phi": gen.phi, "pdgId": ak.full_like(gen.pt, 22,
                dtype=int), "status": ak.full_like(gen.pt, 1, dtype=int)}), "Pileup": ak.zip({"nTrueInt": sim.mu}),
            },
            depth_limit=1,
        )
        truth_events = ak.zip({"truth_photons": gen, "mu": sim.mu}, depth_limit=1)
    """,
    "docs/validation.md": """
        # "mc, generated: (n, d) arrays of the features names; w_mc, w_gen their event weights": two halves of the
        # t t̄ MC, the second weighted by a pile-up-like factor
        import numpy as np
        from mcsurrogate import read_events

        names = ["m_jj", "m_bb", "met"]
        table = np.column_stack([np.asarray(read_events("mc.root:events")[n]) for n in names])
        mc, generated = table[::2], table[1::2]
        w_mc, w_gen = np.ones(len(mc)), np.random.default_rng(1).uniform(0.5, 1.5, len(generated))
    """,
}

#: every block that carries ``<!-- no-run: reason -->``: (page, first line of its code) -> the reason
NOT_RUN: dict[tuple[str, str], str] = {
    ("docs/columnar.md", "from dask_jobqueue import HTCondorCluster        # or SLURMCluster, PBSCluster, …"): (
        "needs an HTCondor batch system"
    ),
    ("docs/api/workflows.md", "from mcsurrogate.workflows.amplification_study import SMALL, run_study"): (
        "generates 16 000 Pythia events and trains for ~15 min; tests/test_workflows.py runs its parts"
    ),
}

#: pages whose examples train several models or run Pythia: more than ~10 s each
SLOW_PAGES: set[str] = {"docs/amplification.md", "docs/higgs_benchmark.md"}


# -- input files ----------------------------------------------------------------------------------------------
class _Inputs:
    """Input files built on first request in one session directory: real files from the project's writers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        dest = self.directory / name
        if not dest.exists():
            getattr(self, "_" + re.sub(r"\W", "_", name))(dest)
        return dest

    @staticmethod
    def _truth(start: int, stop: int):  # the packaged Pythia 8 gg -> H -> γγ truth: photons and mu
        from mcsurrogate.data_files import load_default_truth

        return load_default_truth()[start:stop]

    def _truth_parquet(self, dest: Path) -> None:
        from mcsurrogate.io import write_events

        write_events(self._truth(0, 600), dest)

    def _new_truth_root(self, dest: Path) -> None:
        from mcsurrogate.io import write_events

        write_events(self._truth(600, 900), dest)

    def _ttbar_mc_parquet(self, dest: Path) -> None:
        from mcsurrogate.generators.higgs_benchmark import generate_higgs_benchmark

        generate_higgs_benchmark("ttbar", 500, dest, seed=1, chunk_size=500, progress=False)

    def _mc_root(self, dest: Path) -> None:  # the t t̄ sample with a pile-up mu ~ Uniform(0, 40) per event
        import numpy as np

        from mcsurrogate.io import read_events, write_events

        events = read_events(self.path("ttbar_mc.parquet"))
        events["mu"] = np.random.default_rng(5).uniform(0.0, 40.0, len(events))
        write_events(events, dest)

    def _all_photons_truth_parquet(self, dest: Path) -> None:  # gg -> H -> γγ, hadronised: every photon > 10 GeV
        from mcsurrogate.generators import generate_higgs_diphoton
        from mcsurrogate.io import write_events

        truth, _ = generate_higgs_diphoton(400, seed=4, hadronization=True, all_photons_pt_min=10.0, progress=False)
        write_events(truth, dest)

    def _smeared_parquet(self, dest: Path) -> None:  # paper A's reference smearing of the truth: training events
        from mcsurrogate.io import read_events, write_events
        from mcsurrogate.response import smear_photons

        write_events(smear_photons(read_events(self.path("truth.parquet")), seed=3), dest)

    def _weighted_mc_parquet(self, dest: Path) -> None:  # weighted Pythia H + jet: diphoton pt, eta, m (GeV), mu
        import awkward as ak

        from mcsurrogate.generators.biased import generate_higgs_jet_diphoton
        from mcsurrogate.io import write_events

        events, _, _ = generate_higgs_jet_diphoton(300, seed=0, bias_power=1.5, progress=False)
        gg = events.photons[:, 0] + events.photons[:, 1]
        write_events(ak.zip({"pt": gg.pt, "eta": gg.eta, "m": gg.mass, "mu": events.mu, "weight": events.weight}), dest)

    def _signal_mc_parquet(self, dest: Path) -> None:
        from mcsurrogate.generators.higgs_benchmark import generate_higgs_benchmark

        generate_higgs_benchmark("signal", 200, dest, seed=2, chunk_size=200, progress=False)


@pytest.fixture(scope="session")
def doc_inputs(tmp_path_factory: pytest.TempPathFactory) -> _Inputs:
    return _Inputs(tmp_path_factory.mktemp("doc_inputs"))


# -- the runner -----------------------------------------------------------------------------------------------
def _substituted(page: str, blocks: list[Block]) -> list[str]:
    codes = [b.code for b in blocks]
    for old, new in SUBSTITUTIONS.get(page, []):
        hits = sum(code.count(old) for code in codes)
        assert hits, f"{page}: the substitution {old!r} -> {new!r} matches no runnable block; update SUBSTITUTIONS"
        codes = [code.replace(old, new) for code in codes]
    return codes


def _page_params() -> list:
    return [pytest.param(page, id=page, marks=[pytest.mark.slow] if page in SLOW_PAGES else []) for page in doc_pages()]


@pytest.mark.parametrize("page", _page_params())
def test_page_examples_run(page: str, doc_inputs: _Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [b for b in page_blocks(page) if b.no_run is None]
    codes = _substituted(page, blocks)
    for name, source in FILES.get(page, {}).items():
        shutil.copy(doc_inputs.path(source), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    try:
        if page in GIVEN:
            exec(compile(textwrap.dedent(GIVEN[page]), f"GIVEN[{page!r}]", "exec"), namespace)  # noqa: S102
        for block, code in zip(blocks, codes, strict=True):
            # the block's own line numbers in tracebacks: README.md:29 is the block's first line of code
            exec(compile("\n" * block.line + code, page, "exec"), namespace)  # noqa: S102 (running the docs is the test)
    finally:
        plt.close("all")


def test_no_run_blocks_are_the_listed_ones() -> None:
    found = {(b.page, b.code.splitlines()[0]): b.no_run for p in doc_pages() for b in page_blocks(p) if b.no_run}
    assert found == NOT_RUN


def test_tables_name_existing_pages() -> None:
    pages = set(doc_pages())
    for table in (SUBSTITUTIONS, FILES, GIVEN):
        assert set(table) <= pages, set(table) - pages
    assert SLOW_PAGES <= pages
    assert "README.md" not in SLOW_PAGES  # the README's examples run in the default selection


# -- docstring examples ---------------------------------------------------------------------------------------
def _doctest_modules() -> list[str]:
    """Every module of the package whose source holds a ``>>>`` example."""
    modules = []
    for path in sorted(SRC.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(SRC.parent).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@pytest.mark.parametrize("module", _doctest_modules())
def test_docstring_examples(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(module)
    tests = doctest.DocTestFinder().find(mod, module)
    examples = sum(len(t.examples) for t in tests)
    assert examples, f"{module} holds '>>>' but doctest finds no example in its docstrings"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{module}: {result.failed} of {result.attempted} docstring examples failed (above)"


def test_every_python_fence_is_seen() -> None:
    """No ```python block escapes the runner (an indented fence or a ```py variant would), and the README's run."""
    for page in ["README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]:
        text = (ROOT / page).read_text(encoding="utf-8")
        fences = len(re.findall(r"^\s*```(?:python|py|pycon)\b", text, flags=re.MULTILINE))
        assert fences == len(page_blocks(page)), f"{page}: a Python fence that page_blocks does not parse"
    assert len(page_blocks("README.md")) >= 3 and not any(b.no_run for b in page_blocks("README.md"))
