"""Portable samplers: a trained surrogate's flow exported to TorchScript or ONNX, plus a JSON sidecar.

Usage::

    from mcsurrogate.export import export_torchscript, load_torchscript
    export_torchscript(surrogate, "sampler.pt")        # also writes sampler.json
    sampler = load_torchscript("sampler.pt")           # or torch.jit.load / torch::jit::load in C++
    y = sampler(noise, context)                        # preprocessed space in, preprocessed space out

What is exported is the flow's *sampler*: ``forward(noise)`` (unconditional) or ``forward(noise, context)``
(conditional), with ``noise`` standard normal of shape ``(batch, noise_features)`` and ``context`` the
preprocessed conditions, shape ``(batch, n_conditions)``, both float32; it returns the targets in the flow's
preprocessed space, shape ``(batch, n_targets)``, float32. The same noise (``FlowModel.draw_noise`` with the
same numpy generator) gives the same output as :meth:`FlowModel.sample_from_noise`.

Next to the model file, a JSON sidecar with the same stem (``sampler.pt`` → ``sampler.json``) records the
target and condition names, the noise dimension, the flow configuration, the training range of each condition,
the mcsurrogate and torch versions, and the preprocessing of targets and conditions in the format of a model
directory's ``preprocessing.json`` (:meth:`mcsurrogate.preprocessing.Preprocessor.to_dict`). A TorchScript
and an ONNX export of one model therefore need different stems.

Limits
------
* Preprocessing is **not** part of the exported graph: the caller maps conditions from user units into the
  network's space (the conditions' preprocessing, forward) and the output back into user units (the targets'
  preprocessing, inverse), in float64 as mcsurrogate does, with the parameters from the sidecar.
* The graph is traced from a float32 CPU copy of the flow (the surrogate's own model is left as it is, on
  whatever device); the exported file is float32 and made for the CPU.
* Tracing fixes the number of features and the branches that nflows takes on data-dependent checks (its
  spline domain checks); the batch size stays free. Every export is checked against the eager flow on a
  second batch of another size.
* TorchScript: every flow family (``maf``, ``rqs-ar``, ``made-mog``, ``maf-made-mog``, ``realnvp``, ``glow``,
  ``rqs-coupling``) exports and reproduces ``sample_from_noise`` exactly. PyTorch 2.10+ marks
  ``torch.jit.trace``/``save``/``load`` as deprecated in favour of ``torch.export``; they still work (this
  module silences that warning). The files are ordinary TorchScript archives for ``torch.jit.load`` and
  libtorch's ``torch::jit::load`` (the C++ side is not tested here).
* ONNX (PyTorch's TorchScript-based exporter, default opset 17, needs the ``onnx`` package; checked with
  ``onnxruntime`` when that is installed): ``maf``, ``rqs-ar``, ``realnvp`` (also with ``batch_norm``) and
  ``rqs-coupling`` with exactly two targets export and agree with the flow to float32 rounding (~1e-6).
  ``made-mog`` and ``maf-made-mog`` (``torch.special.ndtr`` and ``torch.searchsorted`` in the mixture
  sampling), ``glow`` and ``rqs-coupling`` with three or more targets (``torch.linalg.solve_triangular`` in
  the inverse of the invertible linear layer) do not: :func:`export_onnx` raises :class:`InputError` and
  suggests TorchScript. The newer ``torch.export``-based ONNX exporter handles fewer families (not the
  splines' masked updates), so it is not used.
"""

from __future__ import annotations

import copy
import datetime as _dt
import inspect
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import InputError, MCSurrogateError, require_extra
from .files import refuse_existing, replace_atomically, temporary_path
from .flows import FlowModel, MADEMoG
from .flows.coupling import InvertibleLinear
from .flows.distilled import DistilledFlow, MLPSampler

if TYPE_CHECKING:
    from .surrogate import Surrogate

__all__ = ["EXPORT_FORMAT", "SIDECAR_SCHEMA_VERSION", "export_onnx", "export_torchscript", "load_torchscript"]

EXPORT_FORMAT = "mcsurrogate.export"
SIDECAR_SCHEMA_VERSION = 1
_CHECK_TOLERANCE = 1e-4  # traced vs eager, relative to 1 + |value|: float32 rounding only
#: PyTorch (2.10+) marks torch.jit.trace/save/load as deprecated in favour of torch.export; they still work, and
#: the warning would only repeat what the module docstring says
_JIT_DEPRECATED = r".*`torch\.jit\.\w+` is deprecated"


class _UnconditionalSampler(nn.Module):
    """``noise → flow.sample_from_noise(noise)``."""

    def __init__(self, flow: FlowModel | MLPSampler) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.flow.sample_from_noise(noise, None)


class _ConditionalSampler(nn.Module):
    """``(noise, context) → flow.sample_from_noise(noise, context)``."""

    def __init__(self, flow: FlowModel | MLPSampler) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, noise: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.flow.sample_from_noise(noise, context)


def _cpu_sampler(surrogate: Surrogate) -> tuple[nn.Module, FlowModel | DistilledFlow]:
    """The sampler module around a float32 CPU copy of the surrogate's flow, in eval mode (of a distilled
    surrogate: around its student network alone, so the file holds no teacher weights)."""
    model = surrogate.trained_model
    flow = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    inner = flow.sampler if isinstance(flow, DistilledFlow) else flow
    sampler = _ConditionalSampler(inner) if flow.context_features is not None else _UnconditionalSampler(inner)
    return sampler.eval(), flow


def _example_inputs(flow: FlowModel | DistilledFlow, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Standard-normal noise and (for a conditional flow) a standard-normal stand-in for preprocessed conditions."""
    rng = np.random.default_rng(seed)
    noise = flow.draw_noise(n, rng)
    if flow.context_features is None:
        return (noise,)
    context = torch.from_numpy(rng.standard_normal((n, flow.context_features), dtype=np.float32))
    return noise, context


def _family(surrogate: Surrogate) -> str:
    return str(surrogate.flow_config.model)


def _destination(path: str | os.PathLike[str], overwrite: bool) -> tuple[Path, Path]:
    """Check the model path and its sidecar (``.json``, same stem); create the parent directory."""
    dest = Path(path)
    if dest.is_dir():
        raise InputError(f"{dest} is a directory; give the path of the file to write, e.g. {dest / 'sampler.pt'}")
    if dest.suffix.lower() == ".json":
        raise InputError(
            f"{dest}: the exported model cannot end in .json, the name of its sidecar; use e.g. .pt or .onnx"
        )
    sidecar = dest.with_suffix(".json")
    for p in (dest, sidecar):
        refuse_existing(p, overwrite, "choose another path or pass overwrite=True (--overwrite)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{dest}: cannot create the directory {dest.parent} ({exc})") from exc
    return dest, sidecar


def _sidecar(
    surrogate: Surrogate, flow: FlowModel | DistilledFlow, dest: Path, file_format: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Everything needed to feed the exported graph from user units and to map its output back."""
    inputs: dict[str, Any] = {
        "noise": {"shape": ["batch", flow.noise_features], "dtype": "float32", "distribution": "standard normal"},
    }
    if flow.context_features is not None:
        inputs["context"] = {
            "shape": ["batch", flow.context_features],
            "dtype": "float32",
            "space": "conditions after preprocessing.conditions (forward)",
        }
    cond_pre = surrogate.condition_preprocessor
    return {
        "format": EXPORT_FORMAT,
        "schema_version": SIDECAR_SCHEMA_VERSION,
        "file": dest.name,
        "file_format": file_format,
        **extra,
        "mcsurrogate_version": __version__,
        "torch_version": torch.__version__,
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "flow": surrogate.flow_config.to_dict(),
        "distilled_sampler": None if surrogate.distill_config is None else surrogate.distill_config.to_dict(),
        "targets": list(surrogate.targets),
        "conditions": list(surrogate.conditions),
        "spec": surrogate.spec.to_dict(),
        "noise_features": flow.noise_features,
        "inputs": inputs,
        "output": {
            "shape": ["batch", flow.features],
            "dtype": "float32",
            "space": "targets before preprocessing.targets (apply its inverse)"
            + ("" if surrogate.event_transform is None else ", then preprocessing.event_transform's inverse"),
        },
        "condition_ranges": surrogate.metrics.get("condition_ranges") or {},
        "preprocessing": {
            "targets": surrogate.preprocessor.to_dict(),
            "conditions": None if cond_pre is None else cond_pre.to_dict(),
            "event_transform": None if surrogate.event_transform is None else surrogate.event_transform.to_dict(),
        },
    }


def _onnx_blockers(flow: FlowModel | DistilledFlow) -> list[str]:
    """Parts of the sampler that PyTorch's ONNX exporter cannot translate (measured with torch 2.13, opset 17).

    Checked before exporting because the exporter prints the whole graph to the terminal when it fails; any
    other failure of the exporter is still caught and reported the same way.
    """
    reasons: list[str] = []
    if isinstance(flow, DistilledFlow):  # only the student network is exported
        return reasons
    if isinstance(flow.base, MADEMoG):
        reasons.append("its mixture-of-Gaussians sampling uses torch.special.ndtr and torch.searchsorted")
    if any(isinstance(m, InvertibleLinear) for m in flow.modules()):
        reasons.append("the inverse of its invertible linear layers uses torch.linalg.solve_triangular")
    return reasons


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_reproduces(
    run: Callable[[tuple[torch.Tensor, ...]], np.ndarray],
    flow: FlowModel | DistilledFlow,
    n: int,
    what: str,
    family: str,
) -> None:
    """Compare the exported sampler with the eager flow on a fresh batch of another size."""
    inputs = _example_inputs(flow, n, seed=1)
    with torch.no_grad():
        expected = flow.sample_from_noise(*inputs).numpy()
    got = np.asarray(run(inputs))
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=_CHECK_TOLERANCE, atol=_CHECK_TOLERANCE):
        message = (
            f"the {what} export of flow family {family!r} does not reproduce the flow on a batch of {n} "
            "(the export fixed something that depends on the data)"
        )
        if what == "ONNX":
            raise InputError(f"{message}; export it to TorchScript instead (export_torchscript)")
        raise MCSurrogateError(f"{message}; this is a bug, please report it")


def _write_pair(dest: Path, sidecar: Path, write_model: Callable[[Path], None], meta: dict[str, Any]) -> None:
    """Write the model (via ``write_model(tmp_path)``) and its sidecar to temporaries, then rename both."""
    tmp = temporary_path(dest)
    try:
        write_model(tmp)
        tmp_json = temporary_path(sidecar)
        try:
            tmp_json.write_text(json.dumps(meta, indent=2, default=float), encoding="utf-8")
            replace_atomically(tmp, dest)
            replace_atomically(tmp_json, sidecar)
        finally:
            tmp_json.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)


def _second_batch(n: int) -> int:
    return n // 2 + 1 if n > 2 else n + 2


def export_torchscript(
    surrogate: Surrogate,
    path: str | os.PathLike[str],
    *,
    example_batch: int = 1024,
    overwrite: bool = False,
) -> Path:
    """Trace the surrogate's sampler to a TorchScript file at ``path`` and write the ``.json`` sidecar beside it.

    The file's ``forward`` takes ``(noise)`` or ``(noise, context)``, float32, in the flow's preprocessed space,
    and returns float32 samples in that space. ``example_batch`` events are used to trace. Both files are
    written atomically; existing ones are replaced only with ``overwrite=True``. Returns the model path.
    """
    if not isinstance(example_batch, int) or isinstance(example_batch, bool) or example_batch < 1:
        raise InputError(f"example_batch must be a positive integer, got {example_batch!r}")
    sampler, flow = _cpu_sampler(surrogate)
    dest, sidecar = _destination(path, overwrite)
    family = _family(surrogate)
    with torch.no_grad(), warnings.catch_warnings():
        # data-dependent checks inside nflows (domain errors, "any point inside the spline?") are fixed by tracing
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        traced = torch.jit.trace(sampler, _example_inputs(flow, example_batch, seed=0), check_trace=False)
    traced.eval()

    def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        with torch.no_grad():
            return traced(*inputs).numpy()

    _check_reproduces(run, flow, _second_batch(example_batch), "TorchScript", family)
    meta = _sidecar(surrogate, flow, dest, "torchscript", {})

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
            torch.jit.save(traced, str(tmp))

    _write_pair(dest, sidecar, write, meta)
    return dest


def export_onnx(
    surrogate: Surrogate,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    overwrite: bool = False,
) -> Path:
    """Export the surrogate's sampler to an ONNX file at ``path`` (dynamic batch axis) plus the ``.json`` sidecar.

    Inputs are named ``noise`` and, for a conditional model, ``context``; the output is ``samples``; all float32
    in the flow's preprocessed space. Needs the ``onnx`` package (:class:`MissingExtraError` otherwise). A flow
    whose sampler uses operations that ONNX cannot express raises :class:`InputError` naming the family.
    Checked with ``onnxruntime`` against the flow when that is installed. Returns the model path.
    """
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 1:
        raise InputError(f"opset must be a positive integer, got {opset!r}")
    sampler, flow = _cpu_sampler(surrogate)
    family = _family(surrogate)
    blockers = _onnx_blockers(flow)
    if blockers:
        raise InputError(
            f"flow family {family!r} cannot be exported to ONNX: {'; '.join(blockers)}, which PyTorch's ONNX exporter cannot translate; "
            "export it to TorchScript instead (export_torchscript)"
        )
    onnx: Any = require_extra("onnx", "export")
    dest, sidecar = _destination(path, overwrite)
    names = ["noise"] + (["context"] if flow.context_features is not None else [])
    example = _example_inputs(flow, 64, seed=0)
    # torch >= 2.5 has a ``dynamo`` switch (and defaults to the torch.export-based exporter from 2.9)
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}

    def write(tmp: Path) -> None:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # the TorchScript-based exporter handles the masked spline updates that torch.export rejects
                warnings.filterwarnings(
                    "ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning
                )
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
                warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
                torch.onnx.export(
                    sampler,
                    example,
                    str(tmp),
                    input_names=names,
                    output_names=["samples"],
                    opset_version=opset,
                    dynamic_axes={n: {0: "batch"} for n in [*names, "samples"]},
                    **legacy,  # type: ignore[arg-type]
                )
        except (RuntimeError, ValueError) as exc:  # torch.onnx.errors.OnnxExporterError is a RuntimeError
            raise InputError(
                f"flow family {family!r} cannot be exported to ONNX (opset {opset}): {_first_line(exc)}; "
                "export it to TorchScript instead (export_torchscript)"
            ) from exc
        try:
            onnx.checker.check_model(str(tmp))
        except Exception as exc:  # onnx's checker raises its own ValidationError
            raise InputError(
                f"flow family {family!r}: the ONNX export does not pass onnx's checker ({_first_line(exc)}); "
                "export it to TorchScript instead (export_torchscript)"
            ) from exc
        try:
            import onnxruntime
        except ImportError:
            return
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

        def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
            return session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=False)})[0]

        _check_reproduces(run, flow, 37, "ONNX", family)

    meta = _sidecar(surrogate, flow, dest, "onnx", {"opset": opset, "input_names": names, "output_names": ["samples"]})
    _write_pair(dest, sidecar, write, meta)
    return dest


def load_torchscript(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    """Load a TorchScript sampler written by :func:`export_torchscript` (on the CPU, in eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such TorchScript file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{path} is not a readable TorchScript file ({_first_line(exc)})") from exc
    module.eval()
    return module
