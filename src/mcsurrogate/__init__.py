"""mcsurrogate: generative surrogates for LHC Monte Carlo.

Train normalizing flows (nflows) on the Monte Carlo you have, sample them as awkward event records
with vector four-momenta, validate them against MC with divergences and classifier two-sample tests,
and use them in pyhf HistFactory fits.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcsurrogate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
