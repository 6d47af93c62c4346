"""Sweeps: a grid of tasks x methods x seeds x learning rates, run resumably on local workers or Ray.

    lntune sweep benchmarks/paper_quick.yaml            # local worker processes
    lntune sweep CONFIG.yaml --ray auto                 # tasks on a Ray cluster

Results land in RESULTS/records.jsonl (see store.py for the contract); `read_records` reads them.
"""
from lntune.sweep.store import read_records


def __getattr__(name: str):
    # Lazy: `lntune --help` imports this package, and the rest pulls in torch.
    if name in ("load_config", "SweepConfig"):
        from lntune.sweep import config

        return getattr(config, name)
    if name in ("run_sweep", "SweepReport"):
        from lntune.sweep import driver

        return getattr(driver, name)
    if name in ("expand", "spec_key"):
        from lntune.sweep import grid

        return getattr(grid, name)
    raise AttributeError(name)


__all__ = ["SweepConfig", "SweepReport", "expand", "load_config", "read_records", "run_sweep", "spec_key"]
