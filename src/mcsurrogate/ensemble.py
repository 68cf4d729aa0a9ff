"""Ensembles of surrogates: K members trained on bootstrap replicas of the training MC and/or with different seeds.

The spread of the members' templates is the surrogate's own (model) uncertainty, which the fit can carry as a
modifier (:class:`~mcsurrogate.stats.surrogate_uncertainty.SurrogateUncertainty`):

>>> import numpy as np, awkward as ak
>>> from mcsurrogate import Surrogate
>>> from mcsurrogate.ensemble import SurrogateEnsemble
>>> events = ak.zip({"m": np.random.default_rng(0).exponential(50.0, 3000)})
>>> proto = Surrogate(["m"], flow={"model": "maf", "blocks": 1, "hidden": 8},
...                   training={"epochs": 1, "device": "cpu"})
>>> ens = SurrogateEnsemble.fit(proto, events, k=3, progress=False)
>>> spread = ens.spread("m", n=5000, bins=10, range=(0.0, 200.0))
>>> spread.k, spread.members.shape
(3, (3, 10))

Replicas (``mode``): ``bootstrap`` trains every member on the same split with Poisson(1) weights of its own seed
(:meth:`Surrogate.fit`'s ``bootstrap_seed``: the training statistics' uncertainty); ``seeds`` with the training seed
+ k (initialisation, shuffling and split: the training's own variance); ``both`` (default) does both.

An ensemble is a directory: ``ensemble.json`` (format, schema version, how each member was made) and one model
directory per member (``member_000`` …, each as :meth:`Surrogate.save` writes it: JSON + safetensors, no pickle),
written atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import hist
import numpy as np

from . import __version__
from .arguments import check_bool, check_choice, check_int, check_path, check_seed, describe
from .errors import InputError, ModelDirectoryError
from .files import atomic_directory, atomic_write_json, read_json
from .stats.surrogate_uncertainty import TemplateSpread
from .stats.templates import fill_template
from .surrogate import Surrogate, check_schema_version

__all__ = ["ENSEMBLE_FORMAT", "ENSEMBLE_MODES", "SurrogateEnsemble"]

ENSEMBLE_FORMAT = "mcsurrogate.ensemble"
#: the newest ensemble schema this version reads
ENSEMBLE_SCHEMA_VERSION = 1
#: how the members differ: bootstrap replicas, training seeds, or both
ENSEMBLE_MODES = ("bootstrap", "seeds", "both")

Observable = str | Callable[[ak.Array], np.ndarray]


def _member_seed(seed: int, k: int) -> int:
    """The bootstrap seed of member ``k`` of an ensemble with ``seed`` (independent streams, < 2³²)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint32)[0])


def _member_name(k: int) -> str:
    return f"member_{k:03d}"


class SurrogateEnsemble:
    """K trained surrogates of the same targets and conditions, and how each was made.

    Parameters
    ----------
    members
        Trained :class:`~mcsurrogate.surrogate.Surrogate` objects (≥ 2) with the same targets and conditions.
    replicas
        One dict per member: ``training_seed`` and ``bootstrap_seed`` (``None``: no bootstrap); default: unknown.
    mode, seed
        How the replicas were made (:data:`ENSEMBLE_MODES`) and the ensemble's seed, kept in ``ensemble.json``.
    """

    def __init__(
        self,
        members: Sequence[Surrogate],
        *,
        replicas: Sequence[Mapping[str, Any]] | None = None,
        mode: str | None = None,
        seed: int | None = None,
    ) -> None:
        members = list(members)
        if len(members) < 2:
            raise InputError(f"an ensemble needs at least 2 members; got {len(members)}")
        for k, m in enumerate(members):
            if not isinstance(m, Surrogate):
                raise InputError(f"ensemble member {k} must be a Surrogate, got {describe(m)}")
            if m.model is None:
                raise InputError(f"ensemble member {k} is not trained (fit it or load it first)")
            if m.targets != members[0].targets or m.conditions != members[0].conditions:
                raise InputError(
                    f"ensemble member {k} models targets {m.targets} given {m.conditions}; member 0 models "
                    f"{members[0].targets} given {members[0].conditions}: every member must model the same columns"
                )
        if replicas is not None and len(replicas) != len(members):
            raise InputError(f"replicas has {len(replicas)} entries for {len(members)} members")
        self.members = members
        self.replicas = [dict(r) for r in replicas] if replicas is not None else [{} for _ in members]
        self.mode = mode
        self.seed = seed

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        prototype: Surrogate,
        events: ak.Array,
        *,
        k: int = 5,
        mode: Literal["bootstrap", "seeds", "both"] = "both",
        seed: int = 0,
        progress: bool | None = None,
        **fit_kwargs: Any,
    ) -> SurrogateEnsemble:
        """Train ``k`` copies of the untrained ``prototype`` (its features, flow, preprocessing and training config).

        ``mode``: ``bootstrap``: member j trains with ``bootstrap_seed`` drawn from (``seed``, j) on the prototype's
        split; ``seeds``: with training seed = the prototype's + j (and no bootstrap); ``both``: both.
        ``fit_kwargs`` go to every :meth:`Surrogate.fit` (``weights``, ``validation``, ``nonfinite``, …);
        a ``checkpoint_dir`` gets one subdirectory per member.
        """
        if not isinstance(prototype, Surrogate):
            raise InputError(f"prototype must be an (untrained) Surrogate, got {describe(prototype)}")
        k = check_int(k, "k", minimum=2)
        check_choice(mode, "mode", ENSEMBLE_MODES)
        seed = check_seed(seed, "seed", generator=False)
        if "bootstrap_seed" in fit_kwargs:
            raise InputError("the ensemble sets each member's bootstrap_seed from its seed; do not pass bootstrap_seed")
        checkpoint_dir = fit_kwargs.pop("checkpoint_dir", None)
        base_seed = prototype.train_config.seed
        members, replicas = [], []
        for j in range(k):
            member = copy.deepcopy(prototype)
            member.model = None
            training_seed = base_seed + j if mode in ("seeds", "both") else base_seed
            member.train_config = dataclasses.replace(prototype.train_config, seed=training_seed)
            bootstrap_seed = _member_seed(seed, j) if mode in ("bootstrap", "both") else None
            kwargs = dict(fit_kwargs)
            if checkpoint_dir is not None:
                kwargs["checkpoint_dir"] = Path(checkpoint_dir) / _member_name(j)
            member.fit(events, bootstrap_seed=bootstrap_seed, progress=progress, **kwargs)
            members.append(member)
            replicas.append({"training_seed": training_seed, "bootstrap_seed": bootstrap_seed})
        return cls(members, replicas=replicas, mode=mode, seed=seed)

    # -- container ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, k: int) -> Surrogate:
        return self.members[self._member_index(k)]

    def __iter__(self) -> Iterator[Surrogate]:
        return iter(self.members)

    @property
    def targets(self) -> list[str]:
        """Target columns (the same for every member)."""
        return self.members[0].targets

    @property
    def conditions(self) -> list[str]:
        """Condition columns (the same for every member)."""
        return self.members[0].conditions

    def _member_index(self, k: Any) -> int:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.members):
            raise InputError(f"member must be an integer in [0, {len(self.members) - 1}], got {describe(k)}")
        return int(k)

    # -- sampling -----------------------------------------------------------------------------------------
    def _rng(self, seed: int, k: int) -> np.random.Generator:
        return np.random.default_rng([seed, k])

    def sample(
        self,
        n: int | None = None,
        conditions: Any = None,
        *,
        member: int | None = None,
        seed: int = 0,
        batch_size: int = 100_000,
        progress: bool | None = None,
    ) -> ak.Array:
        """Generate events from one ``member`` or, with ``member=None``, from the ensemble as a mixture (each event
        from a member drawn uniformly at random). Arguments as :meth:`Surrogate.sample`.

        Seeds: member k samples with ``numpy.random.default_rng([seed, k])``; the mixture draws each event's member
        with ``default_rng([seed, K])`` and member k then samples its events (its condition rows, in order)."""
        seed = check_seed(seed, generator=False)
        if member is not None:
            k = self._member_index(member)
            return self.members[k].sample(
                n, conditions, seed=self._rng(seed, k), batch_size=batch_size, progress=progress
            )
        if self.members[0].conditional:
            if conditions is None:
                raise InputError(f"this ensemble is conditional: pass conditions with columns {self.conditions}")
            rows = _condition_rows(conditions)
            total = len(rows)
        else:
            if n is None:
                raise InputError("this ensemble is unconditional: pass the number of events n")
            total = check_int(n, "n", minimum=0)
            rows = None
        assign = np.random.default_rng([seed, len(self.members)]).integers(len(self.members), size=total)
        parts, order = [], []
        for k, m in enumerate(self.members):
            idx = np.flatnonzero(assign == k)
            if rows is None:
                part = m.sample(idx.size, seed=self._rng(seed, k), batch_size=batch_size, progress=progress)
            else:
                part = m.sample(conditions=rows[idx], seed=self._rng(seed, k), batch_size=batch_size, progress=progress)
            parts.append(part)
            order.append(idx)
        merged = ak.concatenate(parts)
        return merged[np.argsort(np.concatenate(order), kind="stable")]

    def sample_members(
        self,
        n: int | None = None,
        conditions: Any = None,
        *,
        seed: int = 0,
        batch_size: int = 100_000,
        progress: bool | None = None,
    ) -> list[ak.Array]:
        """One sample per member (``n`` events or one per condition row each), member k seeded by (``seed``, k)."""
        seed = check_seed(seed, generator=False)
        return [
            m.sample(n, conditions, seed=self._rng(seed, k), batch_size=batch_size, progress=progress)
            for k, m in enumerate(self.members)
        ]

    # -- templates ----------------------------------------------------------------------------------------
    def templates(
        self,
        observable: Observable,
        n: int | None = None,
        conditions: Any = None,
        *,
        bins: int | Sequence[float] | hist.axis.Regular | hist.axis.Variable,
        range: tuple[float, float] | None = None,
        weights: np.ndarray | None = None,
        selection: Callable[[ak.Array], np.ndarray] | None = None,
        seed: int = 0,
        progress: bool | None = None,
    ) -> list[hist.Hist]:
        """One weighted template per member of ``observable`` (a column of the sampled records, or a function of
        them returning one number per event, e.g. m_γγ in GeV), on ``bins``/``range`` as
        :func:`~mcsurrogate.stats.templates.fill_template`. ``weights``: one per condition row (e.g. the MC weights
        of the truth events the samples are conditioned on), the same for every member. ``selection``: a function of
        the sampled records returning one boolean per event (e.g. a classifier cut); only the events it keeps fill the
        template (the observable is evaluated on every event)."""
        out = []
        for k, events in enumerate(self.sample_members(n, conditions, seed=seed, progress=progress)):
            values = _observable(events, observable, k)
            if weights is not None and len(weights) != len(values):
                raise InputError(f"weights has {len(weights)} entries; member {k} sampled {len(values)} events")
            w = None if weights is None else np.asarray(weights, dtype=float)
            if selection is not None:
                keep = np.asarray(selection(events))
                if keep.dtype != bool or keep.shape != values.shape:
                    raise InputError(
                        f"selection must return one boolean per event ({values.size}); got {keep.dtype} of shape "
                        f"{keep.shape}"
                    )
                values, w = values[keep], None if w is None else w[keep]
            out.append(fill_template(values, bins=bins, range=range, weights=w, name=_name(observable)))
        return out

    def spread(
        self,
        observable: Observable,
        n: int | None = None,
        conditions: Any = None,
        *,
        bins: int | Sequence[float] | hist.axis.Regular | hist.axis.Variable,
        range: tuple[float, float] | None = None,
        weights: np.ndarray | None = None,
        selection: Callable[[ak.Array], np.ndarray] | None = None,
        nominal: hist.Hist | None = None,
        shape_only: bool = True,
        seed: int = 0,
        progress: bool | None = None,
    ) -> TemplateSpread:
        """The per-bin spread of the members' templates (:meth:`templates`, with its ``weights`` and ``selection``)
        around ``nominal`` (default: their mean); see :class:`~mcsurrogate.stats.surrogate_uncertainty.TemplateSpread`."""
        check_bool(shape_only, "shape_only")
        hists = self.templates(
            observable,
            n,
            conditions,
            bins=bins,
            range=range,
            weights=weights,
            selection=selection,
            seed=seed,
            progress=progress,
        )
        return TemplateSpread.from_templates(hists, nominal=nominal, shape_only=shape_only)

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the ensemble directory atomically: ``ensemble.json`` and one model directory per member."""
        path = check_path(path, "path")
        overwrite = check_bool(overwrite, "overwrite")
        with atomic_directory(path, overwrite=overwrite) as tmp:
            for k, m in enumerate(self.members):
                m.save(tmp / _member_name(k))
            atomic_write_json(
                tmp / "ensemble.json",
                {
                    "format": ENSEMBLE_FORMAT,
                    "schema_version": ENSEMBLE_SCHEMA_VERSION,
                    "mcsurrogate_version": __version__,
                    "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "mode": self.mode,
                    "seed": self.seed,
                    "targets": self.targets,
                    "conditions": self.conditions,
                    "members": [{"directory": _member_name(k), **self.replicas[k]} for k in range(len(self))],
                },
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> SurrogateEnsemble:
        """Load an ensemble directory written by :meth:`save` (never unpickles); :class:`ModelDirectoryError` for a
        directory that is not one, is incomplete, from a newer schema, or whose members model different columns."""
        root = check_path(path, "path")
        if not root.is_dir():
            raise ModelDirectoryError(f"{root}: no such ensemble directory")
        if not (root / "ensemble.json").is_file():
            hint = " (it is a single model: load it with Surrogate.load)" if (root / "config.json").is_file() else ""
            raise ModelDirectoryError(f"{root} is not an mcsurrogate ensemble directory (no ensemble.json){hint}")
        config = read_json(root / "ensemble.json")
        if config.get("format") != ENSEMBLE_FORMAT:
            raise ModelDirectoryError(
                f"{root}/ensemble.json was not written by mcsurrogate (format {config.get('format')!r})"
            )
        check_schema_version(config, root / "ensemble.json", ENSEMBLE_SCHEMA_VERSION, "ensemble")
        entries = config.get("members")
        if not isinstance(entries, list) or len(entries) < 2:
            raise ModelDirectoryError(f"{root}/ensemble.json lists no members (an ensemble has at least 2)")
        members, replicas = [], []
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("directory"), str):
                raise ModelDirectoryError(f"{root}/ensemble.json: member {k} has no 'directory'")
            sub = root / entry["directory"]
            if sub.resolve().parent != root.resolve():
                raise ModelDirectoryError(f"{root}/ensemble.json: member {k}'s directory must be inside the ensemble")
            members.append(Surrogate.load(sub, device=device))
            replicas.append({key: v for key, v in entry.items() if key != "directory"})
        try:
            return cls(members, replicas=replicas, mode=config.get("mode"), seed=config.get("seed"))
        except InputError as exc:
            raise ModelDirectoryError(f"{root}: {exc}") from exc

    def info(self) -> dict[str, Any]:
        """How the ensemble was made and each member's training size and test NLL, JSON-serialisable."""
        return {
            "k": len(self),
            "mode": self.mode,
            "seed": self.seed,
            "targets": self.targets,
            "conditions": self.conditions,
            "members": [
                {
                    **self.replicas[k],
                    "training_size": m.info()["training_size"],
                    "test_nll_flow_space": m.metrics.get("test_nll_flow_space"),
                }
                for k, m in enumerate(self.members)
            ],
        }


def _condition_rows(conditions: Any) -> Any:
    """Conditions in a form that can be indexed by rows (awkward, numpy or a dict of columns)."""
    if isinstance(conditions, Mapping):
        return ak.zip({k: np.asarray(v) for k, v in conditions.items()})
    if isinstance(conditions, (ak.Array, np.ndarray)):
        return conditions
    if hasattr(conditions, "iloc"):  # a pandas DataFrame
        return ak.zip({str(c): conditions[c].to_numpy() for c in conditions.columns})
    raise InputError(
        f"conditions must be records, a numpy array, a DataFrame or a dict of columns, got {describe(conditions)}"
    )


def _name(observable: Observable) -> str:
    return observable if isinstance(observable, str) else getattr(observable, "__name__", "observable")


def _observable(events: ak.Array, observable: Observable, k: int) -> np.ndarray:
    if isinstance(observable, str):
        if observable not in events.fields:
            raise InputError(f"observable {observable!r} is not a column of the samples; they have {events.fields}")
        values = events[observable]
    elif callable(observable):
        values = observable(events)
    else:
        raise InputError(f"observable must be a column name or a function of the records, got {describe(observable)}")
    try:
        arr = np.asarray(ak.to_numpy(values) if isinstance(values, ak.Array) else values, dtype=float)
    except (ValueError, TypeError) as exc:
        raise InputError(f"observable {_name(observable)!r} must be one number per event") from exc
    if arr.shape != (len(events),):
        raise InputError(
            f"observable {_name(observable)!r} of member {k} has shape {arr.shape}; one number per event "
            f"({len(events)}) is needed"
        )
    return arr
