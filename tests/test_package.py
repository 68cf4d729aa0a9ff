"""The package's public surface."""

from __future__ import annotations

import mcsurrogate


def test_public_names_resolve_lazily():
    assert set(mcsurrogate.__all__) == {"__version__", *mcsurrogate._LAZY}
    for name in mcsurrogate.__all__:
        assert getattr(mcsurrogate, name) is not None
