"""A worker's job runner (lntune.sweep.run): the machine load it records beside a run's times."""
import itertools
import time

from lntune.sweep import run


def test_the_load_sampler_averages_the_load_while_the_run_works(monkeypatch):
    values = itertools.chain([1.0, 2.0, 3.0], itertools.repeat(3.0))
    monkeypatch.setattr(run.os, "getloadavg", lambda: (next(values), 0.0, 0.0))
    with run.LoadSampler(every=0.05) as load:
        deadline = time.monotonic() + 0.12  # the first sample, two more 50 ms apart, then the last one on exit
        while time.monotonic() < deadline:
            pass
    assert load.samples[:3] == [1.0, 2.0, 3.0] and all(x == 3.0 for x in load.samples[3:])
    assert load.mean == round(sum(load.samples) / len(load.samples), 2)


def test_without_a_load_average_nothing_is_recorded(monkeypatch):
    monkeypatch.delattr(run.os, "getloadavg")
    with run.LoadSampler(every=0.01) as load:
        pass
    assert load.samples == [] and load.mean is None
