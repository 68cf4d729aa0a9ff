"""Columnar use: surrogate objects on awkward / coffea NanoEvents / dask-awkward, dask sampling on a LocalCluster."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
from scipy import stats

from mcsurrogate import Surrogate
from mcsurrogate.data_files import load_default_truth
from mcsurrogate.errors import InputError, OutputExistsError
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
    with pytest.raises(OutputExistsError, match="not empty"):
        write_partitioned(array, tmp_path / "parts")
    with pytest.raises(InputError, match="partitions"):
        sample_partitions(unconditional_dir, 3, 5)


# -- object-level response (issue 31): any multiplicity, efficiency applied -----------------------------------------
def gen_photons(n_events: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_events)
    n = int(counts.sum())
    photons = ak.unflatten(
        ak.zip(
            {"pt": 10 + rng.exponential(30, n), "eta": rng.uniform(-2.4, 2.4, n), "phi": rng.uniform(-np.pi, np.pi, n)}
        ),
        counts,
    )
    return ak.zip({"photons": photons, "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)


@pytest.fixture(scope="module")
def object_model_dir(tmp_path_factory) -> str:
    import torch

    from mcsurrogate.response import ObjectResponse, PhotonDetector, reconstruct_photons

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks; two OpenMP threads only wait on each other on a shared machine
    try:
        train = reconstruct_photons(gen_photons(3000, 1), PhotonDetector(SmearingConfig("baseline")), seed=1)
        model = ObjectResponse.fit(
            train, preset="demo", training={"epochs": 1, "device": "cpu"}, efficiency={"epochs": 4, "device": "cpu"}
        )
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("objects") / "model"
    model.save(path)
    return str(path)


def nano_objects(truth: ak.Array, ids: bool = True, first_event: int = 7) -> ak.Array:
    n = len(truth)
    fields = {"GenPhoton": truth.photons, "Pileup": ak.zip({"nTrueInt": ak.values_astype(truth.mu, np.float32)})}
    if ids:
        fields |= {
            "run": np.ones(n, np.int64),
            "luminosityBlock": np.ones(n, np.int64),
            "event": np.arange(n) + first_event,
        }
    return ak.zip(fields, depth_limit=1)


def test_object_response_gives_any_multiplicity_with_efficiency(object_model_dir):
    events = nano_objects(gen_photons(1500, 2))
    whole = add_surrogate_objects(events, object_model_dir, seed=4)
    reco, truth = whole.SmearedPhoton, events.GenPhoton
    n_reco, n_truth = ak.to_numpy(ak.num(reco)), ak.to_numpy(ak.num(truth))
    assert (n_reco <= n_truth).all() and 0.6 < n_reco.sum() / n_truth.sum() < 0.95  # objects are lost
    assert len(np.unique(n_reco)) >= 5  # 0 … 5 photons per event
    assert ak.all(reco.pt[:, :-1] >= reco.pt[:, 1:]) and set(reco.fields) == {"pt", "eta", "phi", "mass"}
    assert float((reco[n_reco >= 2][:, 0] + reco[n_reco >= 2][:, 1]).mass[0]) > 0  # vector behaviours
    # keyed noise: the same objects whatever the chunking
    parts = ak.concatenate(
        [
            add_surrogate_objects(events[:600], object_model_dir, seed=4),
            add_surrogate_objects(events[600:], object_model_dir, seed=4),
        ]
    )
    assert ak.all(ak.num(parts.SmearedPhoton) == ak.num(reco))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(parts.SmearedPhoton.pt)), ak.to_numpy(ak.flatten(reco.pt)), rtol=1e-6
    )
    other = add_surrogate_objects(events, object_model_dir, seed=5)
    assert not ak.all(ak.num(other.SmearedPhoton) == ak.num(reco))
    no_ids = nano_objects(gen_photons(200, 3), ids=False)
    a = add_surrogate_objects(no_ids, object_model_dir, seed=1, device="cpu")
    b = add_surrogate_objects(no_ids, object_model_dir, seed=1, device="cpu")
    assert ak.to_list(a.SmearedPhoton.pt) == ak.to_list(b.SmearedPhoton.pt)


def test_object_response_from_nanoaod_genpart_eager_and_dask(object_model_dir, tmp_path):
    pytest.importorskip("coffea")
    import dask
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    truth = gen_photons(900, 5)
    rng = np.random.default_rng(0)
    counts = ak.to_numpy(ak.num(truth.photons))
    # GenPart: the photons (status 1) and as many pions, which the selection leaves out
    n = int(counts.sum())
    pions = ak.unflatten(
        ak.zip({"pt": rng.uniform(5, 50, n), "eta": rng.uniform(-2, 2, n), "phi": rng.uniform(-3, 3, n)}), counts
    )
    gen = ak.concatenate([truth.photons, pions], axis=1)
    pdg = ak.concatenate(
        [ak.full_like(truth.photons.pt, 22, dtype=np.int32), ak.full_like(pions.pt, 211, dtype=np.int32)], axis=1
    )
    genpart = ak.zip(
        {
            "pt": gen.pt,
            "eta": gen.eta,
            "phi": gen.phi,
            "mass": gen.pt * 0.0,
            "pdgId": pdg,
            "status": ak.values_astype(pdg * 0 + 1, np.int32),
            "genPartIdxMother": ak.values_astype(pdg * 0 - 1, np.int32),
            "statusFlags": ak.values_astype(pdg * 0, np.int32),
        }
    )
    flat = ak.zip(
        {
            "GenPart": genpart,
            "Pileup_nTrueInt": ak.values_astype(truth.mu, np.float32),
            "run": np.ones(len(truth), np.int64),
            "luminosityBlock": np.ones(len(truth), np.int64),
            "event": np.arange(len(truth), dtype=np.int64),
        },
        depth_limit=1,
    )
    write_events(flat, tmp_path / "nano.root", tree="Events")

    def process(events):
        photons = events.GenPart[(events.GenPart.pdgId == 22) & (events.GenPart.status == 1)]
        events["GenPhoton"] = photons
        events = add_surrogate_objects(events, object_model_dir, truth="GenPhoton", out="Photon2", seed=2)
        return ak.num(events.Photon2, axis=1), events.Photon2.pt

    source = {str(tmp_path / "nano.root"): "Events"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = process(NanoEventsFactory.from_root(source, schemaclass=NanoAODSchema, mode="virtual").events())
        lazy = process(
            NanoEventsFactory.from_root(source, schemaclass=NanoAODSchema, mode="dask", steps_per_file=3).events()
        )
        counts_lazy, pt_lazy = dask.compute(*lazy)
    np.testing.assert_array_equal(ak.to_numpy(eager[0]), ak.to_numpy(counts_lazy))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(eager[1])), ak.to_numpy(ak.flatten(pt_lazy)), rtol=1e-6)
    plain = add_surrogate_objects(nano_objects(truth, first_event=0), object_model_dir, seed=2, out="Photon2")
    np.testing.assert_array_equal(ak.to_numpy(eager[0]), ak.to_numpy(ak.num(plain.Photon2)))  # pions left out


def test_models_given_as_paths_load_on_the_device_asked_for(object_model_dir, model_dir):
    from mcsurrogate.response import columnar

    model = columnar._model(object_model_dir, "auto")
    expected = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    assert model.response.device.type == expected and model.efficiency.device.type == expected
    assert columnar._model(model_dir, "cpu").device.type == "cpu"
    with pytest.raises(InputError, match="device"):
        columnar._model(model_dir, "tpu")
    with pytest.raises(InputError, match="path of a saved one"):
        add_surrogate_objects(nano_objects(gen_photons(3, 1)), 42)


def test_jet_response_from_nanoaod_genjet_eager_and_dask(tmp_path):
    """GenJet → Jet: a p_T-response ObjectResponse of the benchmark's jet detector inside a NanoEvents processor,
    eager and with dask alike; η, φ copied from truth, the mass scaled with p_T."""
    pytest.importorskip("coffea")
    import dask
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from mcsurrogate.response import ObjectLayout, ObjectResponse
    from mcsurrogate.response.jet_study import JetDetector

    rng = np.random.default_rng(8)

    def jets(n_events: int) -> ak.Array:
        counts = rng.integers(1, 7, n_events)
        n = int(counts.sum())
        cols = {
            "pt": 20 + rng.exponential(40, n),
            "eta": rng.uniform(-2.5, 2.5, n),
            "phi": rng.uniform(-np.pi, np.pi, n),
            "mass": rng.uniform(1, 10, n),
            "flavour": rng.choice([0, 4, 5], n),
        }
        return ak.zip({"jets": ak.unflatten(ak.zip(cols), counts), "mu": rng.uniform(0, 40, n_events)}, depth_limit=1)

    events = JetDetector().passes(jets(3000), 1, 1)
    layout = ObjectLayout(truth="truth_jets", reco="jets", fields=("pt",), max_dr=0.2, symmetric_eta=True)
    model = ObjectResponse.fit(
        events,
        layout,
        preset="demo",
        training={"epochs": 1, "device": "cpu"},
        efficiency={"epochs": 2, "device": "cpu"},
    )
    model.save(tmp_path / "jet_model")
    truth = jets(600)
    genjet = truth.jets
    flat = ak.zip(
        {
            "GenJet": ak.zip(
                {
                    "pt": genjet.pt,
                    "eta": genjet.eta,
                    "phi": genjet.phi,
                    "mass": genjet.mass,
                    "partonFlavour": ak.values_astype(genjet.flavour, np.int32),
                    "hadronFlavour": ak.values_astype(genjet.flavour, np.uint8),
                }
            ),
            "Pileup_nTrueInt": ak.values_astype(truth.mu, np.float32),
            "run": np.ones(len(truth), np.int64),
            "luminosityBlock": np.ones(len(truth), np.int64),
            "event": np.arange(len(truth), dtype=np.int64),
        },
        depth_limit=1,
    )
    write_events(flat, tmp_path / "nano.root", tree="Events")

    def process(events):
        events = add_surrogate_objects(events, str(tmp_path / "jet_model"), truth="GenJet", out="Jet2", seed=2)
        return ak.num(events.Jet2, axis=1), events.Jet2.pt, events.Jet2.eta, events.Jet2.mass

    source = {str(tmp_path / "nano.root"): "Events"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = process(NanoEventsFactory.from_root(source, schemaclass=NanoAODSchema, mode="virtual").events())
        lazy = dask.compute(
            *process(
                NanoEventsFactory.from_root(source, schemaclass=NanoAODSchema, mode="dask", steps_per_file=3).events()
            )
        )
    for a, b in zip(eager, lazy, strict=True):
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(a, axis=None)), ak.to_numpy(ak.flatten(b, axis=None)), rtol=1e-6
        )
    n_reco, n_truth = ak.to_numpy(eager[0]), ak.to_numpy(ak.num(genjet))
    assert (n_reco <= n_truth).all() and 0.7 < n_reco.sum() / n_truth.sum() < 0.99  # jets are lost
    # every reco jet sits on a truth jet's (η, mass / p_T): η copied, the four-momentum scaled
    truth_keys = {
        (round(e, 4), round(m / p, 5))
        for e, m, p in zip(*(ak.to_numpy(ak.flatten(genjet[f])) for f in ("eta", "mass", "pt")), strict=True)
    }
    reco = zip(*(ak.to_numpy(ak.flatten(x)) for x in (eager[2], eager[3], eager[1])), strict=True)
    assert all((round(float(e), 4), round(float(m / p), 5)) in truth_keys for e, m, p in reco)
