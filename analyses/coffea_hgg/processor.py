"""A coffea processor that smears generator-level photons with a response surrogate and histograms m_γγ.

The processor is the same for eager (``mode="virtual"``/``"eager"``) and dask (``mode="dask"``) NanoEvents: the
surrogate call (:func:`mcsurrogate.response.columnar.add_surrogate_objects`) and the pair mass dispatch on the
array type, and the histogram is a ``hist.dask.Hist`` when the events are lazy.
"""

from __future__ import annotations

import os
from typing import Any

import awkward as ak
import hist
import hist.dask as dask_hist
from coffea import processor

from mcsurrogate.response.columnar import add_surrogate_objects, pair_mass


def _is_dask(array: Any) -> bool:
    try:
        import dask_awkward as dak
    except ImportError:  # pragma: no cover - coffea depends on dask-awkward
        return False
    return isinstance(array, dak.Array)


class DiphotonMassProcessor(processor.ProcessorABC):
    """Fill m_γγ (GeV) of the two leading truth photons and of their surrogate-smeared versions."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        seed: int = 0,
        bins: int = 60,
        mass_range: tuple[float, float] = (110.0, 140.0),
    ) -> None:
        self.model_dir = str(model_dir)
        self.seed = seed
        self.bins = bins
        self.mass_range = mass_range

    def process(self, events: Any) -> dict[str, Any]:
        events = add_surrogate_objects(
            events, self.model_dir, truth="GenPhoton", pileup="Pileup.nTrueInt", out="SmearedPhoton", seed=self.seed
        )
        factory = dask_hist.Hist if _is_dask(events) else hist.Hist
        h = (
            factory.new.StrCat(["truth", "surrogate"], name="level")
            .Reg(self.bins, *self.mass_range, name="mass", label=r"$m_{\gamma\gamma}$ [GeV]")
            .Weight()
        )
        h.fill(level="truth", mass=pair_mass(events.GenPhoton))
        h.fill(level="surrogate", mass=pair_mass(events.SmearedPhoton))
        return {"mgg": h, "events": ak.num(events, axis=0)}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
