"""The model directory: ``config.json`` (schema-versioned, checked against a JSON schema), ``preprocessing.json``,
``weights.safetensors`` and ``metrics.json`` (and ``event_transform.json`` for a surrogate with an event transform);
written atomically, read without unpickling.

:func:`check_schema_version` is shared with the other directories mcsurrogate writes (ensembles, reweightings).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..arguments import describe
from ..errors import InputError, ModelDirectoryError
from ..files import atomic_directory, atomic_write_json, atomic_write_text, read_json
from ..flows import FLOW_FAMILIES, FlowConfig, FlowModel, build_flow
from ..flows.distilled import DistillConfig, DistilledFlow, MLPSampler
from ..persistence import load_tensors, save_tensors
from ..preprocessing import Preprocessor
from ..records import FeatureSpec
from ..training import TrainConfig
from .event_transform import EVENT_TRANSFORMS, EventTransform, TargetMap, as_event_transform

__all__ = [
    "EVENT_TRANSFORM_FILE",
    "MODEL_FILES",
    "MODEL_FORMAT",
    "SCHEMA_VERSION",
    "StoredConfig",
    "check_schema_version",
    "load_flow",
    "model_config",
    "read_config",
    "write_model_directory",
]

MODEL_FORMAT = "mcsurrogate.surrogate"
#: the newest model schema this version reads; 1: a flow, 2: adds ``distilled_sampler`` (written only by distilled
#: surrogates, so that an older mcsurrogate refuses them clearly instead of failing on the student's weights), 3: the
#: distilled sampler's ``precision`` (a schema-2 directory samples in float32), 4: ``event_transform`` (its kind;
#: written only by surrogates with one, whose state is in :data:`EVENT_TRANSFORM_FILE`)
SCHEMA_VERSION = 4
#: the files of a model directory
MODEL_FILES = ("config.json", "preprocessing.json", "weights.safetensors", "metrics.json")
#: the event transform's strict-JSON state, beside ``config.json`` (only when ``config.json`` names one)
EVENT_TRANSFORM_FILE = "event_transform.json"


def check_schema_version(config: Mapping[str, Any], file: Path, newest: int, what: str) -> int:
    """``config["schema_version"]``, checked: present, an integer, ≥ 1 and at most ``newest`` (else "upgrade");
    :class:`ModelDirectoryError` naming ``file`` otherwise. ``what`` names the kind of directory (``model``)."""
    if "schema_version" not in config:
        raise ModelDirectoryError(
            f"{file} has no 'schema_version' (every {what} mcsurrogate writes has one): damaged or not mcsurrogate's"
        )
    version = config["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelDirectoryError(
            f"{file}: schema_version must be an integer (1 to {newest} for this mcsurrogate {__version__}), "
            f"got {describe(version)}"
        )
    if version < 1:
        raise ModelDirectoryError(
            f"{file}: schema_version {version} is not a {what} schema mcsurrogate ever wrote (1 to {newest}); "
            "the file is damaged"
        )
    if version > newest:
        raise ModelDirectoryError(
            f"{file}: {what} schema_version {version} is newer than this mcsurrogate {__version__} reads "
            f"(schema {newest}); upgrade mcsurrogate"
        )
    return version


# -- config.json ------------------------------------------------------------------------------------------------
def model_config(
    spec: FeatureSpec,
    flow: FlowConfig,
    training: TrainConfig,
    distilled: DistillConfig | None,
    event_transform: EventTransform | None = None,
) -> dict[str, Any]:
    """The content of ``config.json`` (without the version and time stamps that :func:`write_model_directory`
    adds); also what :meth:`~mcsurrogate.surrogate.Surrogate.fit` fingerprints for resuming. An event transform adds
    its ``kind`` (and schema 4); without one the content is as before."""
    config = {
        "format": MODEL_FORMAT,
        "schema_version": 1 if distilled is None else 3,
        "spec": spec.to_dict(),
        "flow": flow.to_dict(),
        "training": training.to_dict(),
        "distilled_sampler": None if distilled is None else distilled.to_dict(),
    }
    if event_transform is not None:
        config["schema_version"] = 4
        config["event_transform"] = event_transform.to_dict()["kind"]
    return config


def _json_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of a field type of a configuration dataclass (int, float, str, bool, Literal, X | None,
    tuples and lists, nested dataclasses)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is type(None):
        return {"type": "null"}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_json_schema(a) for a in args]}
    if origin in (tuple, list):
        return {"type": "array", "items": _json_schema(args[0])} if args else {"type": "array"}
    if dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp)
    return {}


def _dataclass_schema(cls: Any, required: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON schema of a configuration dataclass's ``to_dict``: its fields' types, those without a default (and
    ``required``) required, no other keys."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "properties": {f.name: _json_schema(hints[f.name]) for f in fields},
        "required": sorted(
            {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
            | set(required)
        ),
        "additionalProperties": False,
    }


@functools.cache
def _config_schema() -> dict[str, Any]:
    """The JSON schema of ``config.json`` (after its format and schema version are checked)."""
    flow = _dataclass_schema(FlowConfig, required=["model"])
    flow["properties"]["model"] = {"enum": list(FLOW_FAMILIES)}
    return {
        "type": "object",
        "required": ["format", "schema_version", "spec", "flow", "training"],
        "properties": {
            "spec": _dataclass_schema(FeatureSpec),
            "flow": flow,
            "training": _dataclass_schema(TrainConfig),
            "distilled_sampler": {"anyOf": [{"type": "null"}, _dataclass_schema(DistillConfig)]},
            "event_transform": {"enum": list(EVENT_TRANSFORMS)},
            "mcsurrogate_version": {"type": "string"},
            "saved": {"type": "string"},
        },
    }


def _validate_config(config: Mapping[str, Any], file: Path) -> None:
    """Check ``config.json`` against :func:`_config_schema`; :class:`ModelDirectoryError` names each wrong key."""
    import jsonschema

    problems = []
    errors = jsonschema.Draft202012Validator(_config_schema()).iter_errors(config)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, Mapping):
            for key in error.validator_value:
                if key not in error.instance:
                    name = f"{where}.{key}" if where else key
                    problems.append(f"{name!r} is missing")
        else:
            problems.append(f"{where or 'the top level'!r}: {error.message}")
    if problems:
        raise ModelDirectoryError(f"{file}: " + "; ".join(problems))


# -- writing ----------------------------------------------------------------------------------------------------
def write_model_directory(
    path: Path,
    config: Mapping[str, Any],
    preprocessor: Preprocessor,
    condition_preprocessor: Preprocessor | None,
    model: FlowModel | DistilledFlow,
    metrics: Mapping[str, Any],
    *,
    overwrite: bool = False,
    event_transform: EventTransform | None = None,
) -> Path:
    """Write a model directory atomically (a temporary directory renamed into place): ``config`` (from
    :func:`model_config`, stamped with the mcsurrogate version and the UTC time), the preprocessors' JSON state,
    the flow's weights (safetensors), ``metrics`` and the ``event_transform``'s strict-JSON state."""
    with atomic_directory(path, overwrite=overwrite) as tmp:
        stamped = dict(config) | {
            "mcsurrogate_version": __version__,
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(tmp / "config.json", json.dumps(stamped, indent=2))
        pre = {
            "targets": preprocessor.to_dict(),
            "conditions": None if condition_preprocessor is None else condition_preprocessor.to_dict(),
        }
        atomic_write_text(tmp / "preprocessing.json", json.dumps(pre, indent=2))
        save_tensors(tmp / "weights.safetensors", model.state_dict(), {"format": MODEL_FORMAT})
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2, default=float))
        if event_transform is not None:
            atomic_write_json(tmp / EVENT_TRANSFORM_FILE, event_transform.to_dict())
    return Path(path)


# -- reading ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredConfig:
    """A model directory's configuration and fitted preprocessing, checked (:func:`read_config`)."""

    spec: FeatureSpec
    flow: FlowConfig
    training: TrainConfig
    preprocessor: Preprocessor
    condition_preprocessor: Preprocessor | None
    #: ``config.json``'s ``distilled_sampler`` entry as stored (``None`` for a flow that samples itself)
    distilled_sampler: Mapping[str, Any] | None
    #: the event transform of :data:`EVENT_TRANSFORM_FILE` (``None``: none)
    event_transform: EventTransform | None = None


def read_config(root: Path) -> StoredConfig:
    """The configuration of the model directory ``root``: :class:`ModelDirectoryError` for a directory that is
    missing, missing files, damaged, not written by mcsurrogate, or from a newer schema version."""
    if not root.is_dir():
        raise ModelDirectoryError(f"{root}: no such model directory")
    if not (root / "config.json").is_file():
        raise ModelDirectoryError(
            f"{root} is not an mcsurrogate model directory (no config.json; expected {', '.join(MODEL_FILES)})"
        )
    config = read_json(root / "config.json")
    if config.get("format") != MODEL_FORMAT:
        raise ModelDirectoryError(
            f"{root}/config.json was not written by mcsurrogate (format {config.get('format')!r})"
        )
    check_schema_version(config, root / "config.json", SCHEMA_VERSION, "model")
    _validate_config(config, root / "config.json")
    kind = config.get("event_transform")
    files = MODEL_FILES if kind is None else (*MODEL_FILES, EVENT_TRANSFORM_FILE)
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise ModelDirectoryError(f"{root} is incomplete: missing {', '.join(missing)}")
    try:
        spec = FeatureSpec.from_dict(config["spec"])
        flow = FlowConfig.from_dict(config["flow"])
        training = TrainConfig.from_dict(config["training"])
        pre = read_json(root / "preprocessing.json")
        target_pre = Preprocessor.from_dict(pre["targets"])
        cond_pre = None if pre.get("conditions") is None else Preprocessor.from_dict(pre["conditions"])
        transform = None if kind is None else as_event_transform(read_json(root / EVENT_TRANSFORM_FILE))
        if transform is not None and transform.to_dict()["kind"] != kind:
            raise InputError(f"{EVENT_TRANSFORM_FILE} holds kind {transform.to_dict()['kind']!r}, config.json {kind!r}")
        columns = TargetMap(spec.targets, transform).columns
    except (KeyError, TypeError, InputError) as exc:
        raise ModelDirectoryError(f"{root}: configuration is damaged ({exc})") from exc
    if list(target_pre.columns) != columns:
        what = "targets" if transform is None else "the event transform's output columns"
        raise ModelDirectoryError(f"{root}: preprocessing columns {target_pre.columns} differ from {what} {columns}")
    return StoredConfig(spec, flow, training, target_pre, cond_pre, config.get("distilled_sampler"), transform)


def load_flow(root: Path, stored: StoredConfig) -> tuple[FlowModel | DistilledFlow, DistillConfig | None]:
    """The flow of the model directory ``root`` (a :class:`DistilledFlow` around it for a distilled surrogate) with
    its weights loaded, in eval mode, and the distillation configuration (``None`` for a plain flow)."""
    teacher = build_flow(stored.flow, len(stored.preprocessor.columns), len(stored.spec.conditions) or None)
    model: FlowModel | DistilledFlow = teacher
    distilled = None
    if stored.distilled_sampler is not None:
        try:
            distilled = DistillConfig.from_dict(stored.distilled_sampler)
        except (TypeError, InputError) as exc:
            raise ModelDirectoryError(f"{root}: configuration is damaged ({exc})") from exc
        model = DistilledFlow(
            teacher,
            MLPSampler(
                teacher.features, teacher.context_features, distilled.hidden, distilled.layers, distilled.activation
            ),
            distilled.precision,
        )
    tensors, _ = load_tensors(root / "weights.safetensors")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ModelDirectoryError(f"{root}/weights.safetensors does not match config.json ({exc})") from exc
    return model.eval(), distilled
