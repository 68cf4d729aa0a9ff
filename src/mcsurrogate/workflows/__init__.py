"""Paper B's studies as library calls: what ``analyses/higgs_amplification/*.py`` run (paper A's is
:func:`mcsurrogate.response.study.run_scenario`). One concept per module, imported on use (this package imports
nothing heavy by itself):

* :mod:`~mcsurrogate.workflows.sample_cache`: the Pythia 8 sample cache of the HIGGS-like benchmark;
* :mod:`~mcsurrogate.workflows.splits`: the background and signal splits;
* :mod:`~mcsurrogate.workflows.model_choice`: the amplifier, from a model comparison or an earlier study;
* :mod:`~mcsurrogate.workflows.cut_analysis`: the classifier cut, its pyhf scans and toys;
* :mod:`~mcsurrogate.workflows.bars`: the quality bars and their MC-statistics floors;
* :mod:`~mcsurrogate.workflows.figures` and :mod:`~mcsurrogate.workflows.report`: the studies' figures and
  Markdown reports;
* :mod:`~mcsurrogate.workflows.amplification_study`: the whole study,
  :func:`~mcsurrogate.workflows.amplification_study.run_study`, and its settings,
  :class:`~mcsurrogate.workflows.amplification_study.StudyConfig`.
"""
