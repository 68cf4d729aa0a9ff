"""Portable samplers: TorchScript (and ONNX where the flow allows) reproduce the flow for a fixed noise draw."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from mcsurrogate import Surrogate, __version__
from mcsurrogate.errors import InputError, MissingExtraError, OutputExistsError
from mcsurrogate.export import export_onnx, export_torchscript, load_torchscript
from mcsurrogate.preprocessing import Preprocessor

from .conftest import correlated_events

TINY = {"epochs": 1, "batch_size": 128, "device": "cpu", "patience": None}
EVENTS = correlated_events(400, seed=5)
COND = correlated_events(257, seed=6)  # an odd batch size, different from the one traced


def _fit(family: str, conditional: bool, **flow: object) -> Surrogate:
    cfg = {"model": family, "blocks": 2, "hidden": 16, "bins": 4, "components": 3} | flow
    conditions = ["mu"] if conditional else None
    return Surrogate(["a", "b", "c"], conditions, flow=cfg, training=TINY).fit(EVENTS, progress=False)


@pytest.fixture(scope="module")
def surrogates() -> dict[tuple[str, bool], Surrogate]:
    return {(f, c): _fit(f, c) for f in ("maf", "realnvp") for c in (True, False)}


def _inputs(s: Surrogate, seed: int) -> tuple[torch.Tensor, ...]:
    """A fixed noise draw and, for a conditional model, the preprocessed conditions of ``COND``."""
    noise = s.model.draw_noise(len(COND), np.random.default_rng(seed))
    if not s.conditional:
        return (noise,)
    c = np.stack([COND[col].to_numpy() for col in s.conditions], axis=1)
    return noise, torch.as_tensor(s.condition_preprocessor.forward(c), dtype=torch.float32)


def _expected(s: Surrogate, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    with torch.no_grad():
        return s.model.sample_from_noise(*inputs).numpy()


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "unconditional"])
@pytest.mark.parametrize("family", ["maf", "realnvp"])
def test_torchscript_reproduces_the_flow_for_a_fixed_noise_draw(surrogates, tmp_path, family, conditional) -> None:
    s = surrogates[family, conditional]
    out = export_torchscript(s, tmp_path / "sampler.pt", example_batch=100)
    assert out == tmp_path / "sampler.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampler.json", "sampler.pt"]  # no temporaries left
    module = load_torchscript(out)
    assert isinstance(module, torch.jit.ScriptModule)
    inputs = _inputs(s, seed=42)
    with torch.no_grad():
        got = module(*inputs)
    assert got.dtype == torch.float32 and got.shape == (len(COND), 3)
    np.testing.assert_allclose(got.numpy(), _expected(s, inputs), rtol=0, atol=1e-5)


def test_sidecar_has_everything_to_sample_in_user_units_without_mcsurrogate(surrogates, tmp_path) -> None:
    s = surrogates["maf", True]
    module = load_torchscript(export_torchscript(s, tmp_path / "m.pt"))
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["format"] == "mcsurrogate.export" and meta["file_format"] == "torchscript"
    assert meta["mcsurrogate_version"] == __version__
    assert meta["targets"] == ["a", "b", "c"] and meta["conditions"] == ["mu"]
    assert meta["noise_features"] == s.model.noise_features == 3
    assert meta["flow"]["model"] == "maf"
    assert meta["preprocessing"]["targets"] == s.preprocessor.to_dict()
    assert meta["preprocessing"]["conditions"] == s.condition_preprocessor.to_dict()
    # noise from the same seed, preprocessing from the sidecar: the events of Surrogate.sample, in user units
    target_pre = Preprocessor.from_dict(meta["preprocessing"]["targets"])
    cond_pre = Preprocessor.from_dict(meta["preprocessing"]["conditions"])
    rng = np.random.default_rng(9)
    noise = torch.from_numpy(rng.standard_normal((len(COND), meta["noise_features"]), dtype=np.float32))
    ctx = torch.as_tensor(cond_pre.forward(COND.mu.to_numpy()[:, None]), dtype=torch.float32)
    with torch.no_grad():
        x = target_pre.inverse(module(noise, ctx).double().numpy())
    ref = s.sample(conditions=COND, seed=9)
    for j, col in enumerate(meta["targets"]):
        np.testing.assert_allclose(x[:, j], ref[col].to_numpy(), rtol=1e-6)


def test_spline_flow_torchscript_also_outside_the_spline_interval(tmp_path) -> None:
    s = _fit("rqs-ar", conditional=False, tail_bound=3.0)
    module = load_torchscript(export_torchscript(s, tmp_path / "rqs.pt", example_batch=64))
    (noise,) = _inputs(s, seed=1)
    noise[:5] = 50.0  # all features in the linear tails
    noise[5:9, 0] = -40.0
    with torch.no_grad():
        got = module(noise).numpy()
        lone = module(noise[:1]).numpy()  # a batch with no point inside the spline interval
    np.testing.assert_allclose(got, _expected(s, (noise,)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(lone, _expected(s, (noise[:1],)), rtol=0, atol=1e-5)


def test_export_refuses_an_unfitted_surrogate(tmp_path) -> None:
    s = Surrogate(["a", "b"], flow="maf")
    with pytest.raises(InputError, match="not trained"):
        export_torchscript(s, tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


def test_export_refuses_bad_paths_and_existing_files(surrogates, tmp_path) -> None:
    s = surrogates["realnvp", False]
    with pytest.raises(InputError, match="is a directory"):
        export_torchscript(s, tmp_path)
    with pytest.raises(InputError, match="sidecar"):
        export_torchscript(s, tmp_path / "m.json")
    with pytest.raises(InputError, match="example_batch"):
        export_torchscript(s, tmp_path / "m.pt", example_batch=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create the directory"):
        export_torchscript(s, tmp_path / "file" / "m.pt")
    out = export_torchscript(s, tmp_path / "new" / "dir" / "m.pt")  # missing parents are created
    with pytest.raises(OutputExistsError, match="exists already"):
        export_torchscript(s, out)
    first = out.read_bytes()
    export_torchscript(_fit("realnvp", conditional=False, hidden=8), out, overwrite=True)
    assert out.read_bytes() != first


def test_load_torchscript_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="no such TorchScript file"):
        load_torchscript(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable TorchScript file"):
        load_torchscript(tmp_path / "junk.pt")


def test_onnx_without_the_package_names_the_extra(surrogates, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(MissingExtraError, match=r"mcsurrogate\[export\]"):
        export_onnx(surrogates["maf", True], tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "unconditional"])
@pytest.mark.parametrize("family", ["maf", "realnvp"])
def test_onnx_reproduces_the_flow_for_a_fixed_noise_draw(surrogates, tmp_path, family, conditional) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    s = surrogates[family, conditional]
    out = export_onnx(s, tmp_path / "sampler.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampler.json", "sampler.onnx"]
    meta = json.loads((tmp_path / "sampler.json").read_text())
    assert meta["file_format"] == "onnx" and meta["opset"] == 17
    inputs = _inputs(s, seed=42)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(meta["input_names"], inputs, strict=False)})[0]
    np.testing.assert_allclose(got, _expected(s, inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("family", "operation"), [("glow", "solve_triangular"), ("made-mog", "searchsorted")])
def test_onnx_refuses_a_flow_it_cannot_express(tmp_path, family, operation) -> None:
    s = _fit(family, conditional=True, blocks=1, hidden=8)
    with pytest.raises(
        InputError, match=rf"flow family '{family}' cannot be exported to ONNX.*{operation}.*TorchScript"
    ):
        export_onnx(s, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
    module = load_torchscript(export_torchscript(s, tmp_path / "m.pt", example_batch=64))  # the way out works
    inputs = _inputs(s, seed=3)
    with torch.no_grad():
        np.testing.assert_allclose(module(*inputs).numpy(), _expected(s, inputs), rtol=0, atol=1e-5)


def test_the_reference_numpy_preprocessing_in_the_docs_matches_the_library() -> None:
    """docs/export.md promises that its numpy/scipy code maps the sidecar like mcsurrogate: run it."""
    from pathlib import Path

    from mcsurrogate.preprocessing import Log, Scale

    doc = (Path(__file__).parents[1] / "docs" / "export.md").read_text()
    code = doc.split("This numpy/scipy code does both directions", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    ref: dict[str, object] = {}
    exec(compile(code, "docs/export.md", "exec"), ref)  # noqa: S102 (this repository's own documented code)
    rng = np.random.default_rng(3)
    n = 5000
    x = np.column_stack(
        [
            np.where(rng.random(n) < 0.7, 80.385, 80.385 + rng.exponential(15.0, n)),  # an atom at the minimum
            rng.integers(0, 3, n).astype(float),  # discrete
            rng.exponential(30.0, n) + 20.0,
            rng.normal(0.0, 2.0, n),
            rng.exponential(5.0, n),
        ]
    )
    chains = {"m": "gauss-rank", "k": "gauss-rank", "pt": "logit", "eta": "standardize", "e": [Log(1.0), Scale(2.0)]}
    pre = Preprocessor(list(chains), chains).fit(x)
    d = json.loads(json.dumps(pre.to_dict()))  # what the sidecar holds
    y = pre.forward(x)
    np.testing.assert_allclose(ref["to_network"](d, x), y, rtol=0, atol=1e-12)  # type: ignore[operator]
    z = np.random.default_rng(4).standard_normal(x.shape)
    np.testing.assert_allclose(ref["to_user"](d, z), pre.inverse(z), rtol=1e-14, atol=1e-12)  # type: ignore[operator]


def test_export_command_writes_both_formats_and_refuses_to_overwrite(surrogates, tmp_path, capsys) -> None:
    """``mcsurrogate export MODEL -o FILE``: the format from the suffix, the file reproduces the flow; an existing
    output without --overwrite exits 2 naming it (issue 33: CLI parity)."""
    from mcsurrogate.cli import main

    s = surrogates[("maf", True)]
    model_dir = tmp_path / "m"
    s.save(model_dir)
    assert main(["export", str(model_dir), "-o", str(tmp_path / "s.pt")]) == 0
    inputs = _inputs(s, seed=3)
    loaded = load_torchscript(tmp_path / "s.pt")
    np.testing.assert_allclose(loaded(*inputs).detach().numpy(), _expected(s, inputs), rtol=1e-5, atol=1e-5)
    assert json.loads((tmp_path / "s.json").read_text())["targets"] == ["a", "b", "c"]
    pytest.importorskip("onnx")
    assert main(["export", str(model_dir), "-o", str(tmp_path / "o.onnx")]) == 0  # another stem: o.json
    assert (tmp_path / "o.onnx").stat().st_size > 0 and (tmp_path / "o.json").is_file()
    capsys.readouterr()
    assert main(["export", str(model_dir), "-o", str(tmp_path / "s.pt")]) == 2
    assert "s.pt exists already" in capsys.readouterr().err
