"""Columnar use: surrogate objects on awkward / coffea NanoEvents / dask-awkward, dask sampling on a LocalCluster."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
from scipy import stats

from mcsurrogate import Surrogate
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import InputError
from mcsurrogate.io import write_events
from mcsurrogate.response import SmearingConfig, smear_photons, train_response
from mcsurrogate.response.columnar import add_surrogate_objects, event_noise, pair_mass


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    smeared = smear_photons(load_default_truth()[:4000], SmearingConfig("baseline"), seed=0)
    model = train_response(
        smeared, "demo", flow={"blocks": 2, "hidden": 32}, training={"epochs": 1, "device": "cpu"}, progress=False
    )
    path = tmp_path_factory.mktemp("response") / "model"
    model.save(path)
    return str(path)


def nano(truth: ak.Array, ids: bool = True) -> ak.Array:
    n = len(truth)
    fields = {
        "GenPhoton": ak.zip(
            {"pt": truth.photons.pt, "eta": truth.photons.eta, "phi": truth.photons.phi, "mass": truth.photons.pt * 0.0}
        ),
        "Pileup": ak.zip({"nTrueInt": ak.values_astype(truth.mu, np.float32)}),
    }
    if ids:
        fields |= {
            "run": np.ones(n, np.int64),
            "luminosityBlock": np.ones(n, np.int64),
            "event": np.arange(n, dtype=np.int64) + 1000,
        }
    return ak.zip(fields, depth_limit=1)


def test_event_noise_is_keyed_and_normal():
    keys = np.stack([np.ones(20_000, np.int64), np.arange(20_000)], axis=1)
    z = event_noise(keys, 3, seed=7)
    assert z.shape == (20_000, 3) and z.dtype == np.float32
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.03
    np.testing.assert_array_equal(event_noise(keys[5:9], 3, seed=7), z[5:9])
    assert not np.array_equal(event_noise(keys[:10], 3, seed=8), z[:10])


def test_surrogate_objects_do_not_depend_on_chunking(model_dir):
    events = nano(load_default_truth()[4000:4600])
    events = ak.with_field(events, events.GenPhoton[:, ::-1], "GenPhoton")  # unordered input: sorted by pt inside
    whole = add_surrogate_objects(events, model_dir, pileup="Pileup.nTrueInt")
    parts = ak.concatenate(
        [add_surrogate_objects(events[:250], model_dir), add_surrogate_objects(events[250:], model_dir)]
    )
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(whole.SmearedPhoton.pt)), ak.to_numpy(ak.flatten(parts.SmearedPhoton.pt))
    )
    mass = pair_mass(whole.SmearedPhoton)
    assert 115 < float(ak.mean(mass)) < 135
    lead = whole.SmearedPhoton[:, 0]
    assert abs(float(ak.mean(lead.pt - ak.max(events.GenPhoton.pt, axis=1)))) < 5.0
    # each response lands on its own field: η and φ move by the detector's mrad-scale resolutions, not by GeV
    truth_lead = events.GenPhoton[ak.argsort(events.GenPhoton.pt, axis=1, ascending=False)][:, 0]
    for f in ("eta", "phi"):
        shift = ak.to_numpy(getattr(lead, f) - getattr(truth_lead, f))
        assert 0 < np.median(np.abs(shift)) < 0.02, f
    # an event with one photon gets an empty collection, the others are untouched
    one = ak.with_field(events[:3], events.GenPhoton[:3, :1], "GenPhoton")
    out = add_surrogate_objects(one, model_dir)
    assert ak.num(out.SmearedPhoton).tolist() == [0, 0, 0]


def test_without_event_ids_a_chunk_is_reproducible(model_dir):
    events = nano(load_default_truth()[4000:4100], ids=False)
    a = add_surrogate_objects(events, model_dir, seed=3)
    b = add_surrogate_objects(events, model_dir, seed=3)
    assert ak.to_list(a.SmearedPhoton.pt) == ak.to_list(b.SmearedPhoton.pt)


def test_bad_input_names_the_field(model_dir):
    events = nano(load_default_truth()[:10])
    with pytest.raises(InputError, match="Photon"):
        add_surrogate_objects(events, model_dir, truth="Photon")
    with pytest.raises(InputError, match="nPU"):
        add_surrogate_objects(events, model_dir, pileup="Pileup.nPU")


def test_coffea_processor_eager_and_dask_agree(model_dir, tmp_path):
    pytest.importorskip("coffea")
    import importlib.util
    import pathlib

    import dask
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    root = pathlib.Path(__file__).resolve().parents[1] / "analyses" / "coffea_hgg"
    spec = importlib.util.spec_from_file_location("coffea_hgg_processor", root / "processor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = load_default_truth()[4000:5000]
    flat = nano(truth)
    flat = ak.with_field(flat, flat.Pileup.nTrueInt, "Pileup_nTrueInt")
    write_events(flat[[f for f in flat.fields if f != "Pileup"]], tmp_path / "nano.root", tree="Events")
    proc = module.DiphotonMassProcessor(model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = proc.process(
            NanoEventsFactory.from_root(
                {str(tmp_path / "nano.root"): "Events"}, schemaclass=NanoAODSchema, mode="virtual"
            ).events()
        )
        lazy = proc.process(
            NanoEventsFactory.from_root(
                {str(tmp_path / "nano.root"): "Events"}, schemaclass=NanoAODSchema, mode="dask", steps_per_file=3
            ).events()
        )
        (computed,) = dask.compute(lazy)
    assert int(eager["events"]) == 1000 == int(computed["events"])
    np.testing.assert_array_equal(eager["mgg"].values(), computed["mgg"].values())
    assert eager["mgg"]["surrogate", :].sum().value > 900


@pytest.fixture(scope="module")
def unconditional_dir(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    events = ak.zip({"a": rng.normal(size=2000), "b": rng.exponential(size=2000)})
    model = Surrogate(
        targets=["a", "b"],
        flow={"model": "realnvp", "blocks": 2, "hidden": 16},
        training={"epochs": 1, "device": "cpu"},
    )
    model.fit(events, progress=False)
    path = tmp_path_factory.mktemp("unconditional") / "model"
    model.save(path)
    return str(path)


def test_dask_sampling_on_a_local_cluster(unconditional_dir, tmp_path):
    pytest.importorskip("dask_awkward")
    import hist.dask
    from dask.distributed import Client, LocalCluster

    from mcsurrogate.distributed import partition_sizes, sample_partition, sample_partitions, write_partitioned

    assert partition_sizes(10, 3) == [4, 3, 3]
    array = sample_partitions(unconditional_dir, 1000, 4, seed=5)
    expected = ak.concatenate([sample_partition(unconditional_dir, i, 250, 5) for i in range(4)])
    h = hist.dask.Hist.new.Reg(20, -4, 4, name="a").Double().fill(array.a)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        sampled, filled = array.compute(), h.compute()
        write_partitioned(array, tmp_path / "parts")
    np.testing.assert_array_equal(ak.to_numpy(sampled.a), ak.to_numpy(expected.a))
    np.testing.assert_array_equal(filled.values(), np.histogram(ak.to_numpy(expected.a), np.linspace(-4, 4, 21))[0])
    assert len(list((tmp_path / "parts").glob("*.parquet"))) == 4
    with pytest.raises(InputError, match="not empty"):
        write_partitioned(array, tmp_path / "parts")
    with pytest.raises(InputError, match="partitions"):
        sample_partitions(unconditional_dir, 3, 5)
