"""Tiny sweep runs as Ray tasks on a local Ray started here give the local workers' records."""
import pytest

from lntune.sweep.config import parse_config
from lntune.sweep.driver import run_sweep
from lntune.sweep.store import read_records

from .conftest import comparable, tiny_sweep

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_sweep_equals_local(reference, tiny_model, data_dir, tmp_path, local_ray):
    from lntune.sweep.ray_backend import RayBackend

    # seed 1 of the reference sweep, without its timing run: same specs, so the same keys
    cfg = parse_config(tiny_sweep(tiny_model, data_dir, seeds=[1], efficiency=None), tmp_path / "s.yaml")
    report = run_sweep(cfg, tmp_path / "ray", RayBackend("auto", num_cpus=1), progress=False)
    assert report.ok, [(f["run"], f["error"], f["traceback"][-1500:]) for f in report.failed]
    got = comparable(read_records(tmp_path / "ray"))
    expected = comparable(reference[2])
    assert len(got) == 7 and set(got) <= set(expected)
    for key, rec in got.items():
        assert rec == expected[key], (rec["row"], rec["task"], rec["seed"], rec["lr"])
    again = run_sweep(cfg, tmp_path / "ray", RayBackend("auto", num_cpus=1), progress=False)  # resumes: all done
    assert (again.skipped, again.done) == (7, 0)
