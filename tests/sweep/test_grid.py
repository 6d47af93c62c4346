import copy

import pytest

from lntune.sweep.config import parse_config
from lntune.sweep.grid import expand, spec_key

from .conftest import finished, tiny_sweep


def runs_of(cfg: dict, data_dir) -> list:
    return expand(parse_config(copy.deepcopy(cfg), "s.yaml"), str(data_dir))


@pytest.fixture(scope="module")
def grid(data_dir):
    cfg = tiny_sweep("minilm", data_dir)
    return cfg, runs_of(cfg, data_dir)


def test_expansion_follows_the_protocol(grid):
    cfg, runs = grid
    assert [r.kind for r in runs[:1]] == ["efficiency"] and runs[0].spec.method == "bitfit"
    train = [r for r in runs if r.kind == "train"]
    assert len(train) == 4 + 4 + 3  # ln 2 lrs x 2 seeds; bitfit 2 tasks x 2 seeds; 3 masks x 1 seed
    ln = [r for r in train if r.spec.method == "ln" and not r.spec.mask]
    assert sorted((r.lr, r.lr_rank) for r in ln) == [(1e-3, 1), (1e-3, 1), (1e-2, 0), (1e-2, 0)]
    bitfit = [r for r in train if r.spec.method == "bitfit"]
    assert {r.lr for r in bitfit} == {1e-3} and {r.row for r in bitfit} == {"BitFit"}  # lr_budget 1 of [1e-3, 2e-4]
    assert [r.lr_rank for r in train] == sorted(r.lr_rank for r in train)  # first-priority lrs first
    masks = [r for r in train if r.spec.mask]
    assert [r.row for r in masks] == ["individual f=0.5", "cv f=0.5", "random f=0.5"]
    assert masks[0].spec.mask.fisher.tasks == ["sst2"]  # individual: the task's own
    assert masks[1].spec.mask.fisher.tasks == ["rte", "sst2"]  # cv: the pool (the task is left out later)
    assert masks[2].spec.as_json()["mask"] == {"kind": "random", "fraction": 0.5, "seed": 1}
    for r in train:
        assert r.key == spec_key(r.spec) and r.spec.train["seed"] == r.seed and r.spec.train["lr"] == r.lr
        assert r.spec.val_limit == 16 and r.spec.data.startswith("sha256:")


def test_every_spec_field_changes_the_key(grid):
    _, runs = grid
    run = next(r for r in runs if r.kind == "train" and r.spec.method == "ln")

    def leaves(obj, path=()):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from leaves(v, path + (k,))
        else:
            yield path

    keys = {run.key}
    for path in leaves(run.spec.as_json()):
        spec = run.spec.as_json()
        node = spec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = "changed" if node[path[-1]] != "changed" else "other"
        keys.add(spec_key(spec))
    assert len(keys) == 1 + len(list(leaves(run.spec.as_json())))


def test_labels_and_machine_settings_keep_the_keys(grid, data_dir):
    cfg, runs = grid
    relabelled = copy.deepcopy(cfg)
    relabelled.update(name="other", workers=1, results="/elsewhere")
    relabelled["runs"][1].update(row="BF", group="main")
    keys = [r.key for r in runs_of(relabelled, data_dir) if r.kind == "train"]
    assert keys == [r.key for r in runs if r.kind == "train"]


@pytest.mark.parametrize("change", [
    lambda c: c["train"].update(epochs=2),
    lambda c: c.update(train_limit=31),
    lambda c: c["runs"][0].update(options={"terms": "bias"}),
    lambda c: c.update(batch_sizes={"ln": 8}),
    lambda c: c["fisher"].update(examples=9),
])
def test_config_changes_change_the_keys(grid, data_dir, change):
    cfg, runs = grid
    changed = copy.deepcopy(cfg)
    change(changed)
    before = {r.key for r in runs if r.kind == "train"}
    after = {r.key for r in runs_of(changed, data_dir) if r.kind == "train"}
    assert before != after and after - before


def test_method_seeds_follow_the_run_seed_unless_fixed(data_dir):
    cfg = tiny_sweep("minilm", data_dir, runs=[{"method": "prefix+ln"}, {"method": "random", "options": {"seed": 5}}])
    runs = [r for r in runs_of(cfg, data_dir) if r.kind == "train"]
    prefix = [r for r in runs if r.spec.method == "prefix+ln"]
    assert {(r.seed, r.spec.options["prefix"]["seed"]) for r in prefix} == {(1, 1), (2, 2)}
    assert prefix[0].spec.options["ln"]["terms"] == "both"  # defaults are spelled out in the spec
    assert {r.spec.options["seed"] for r in runs if r.spec.method == "random"} == {5}


def test_batch_size_precedence(data_dir):
    cfg = tiny_sweep("minilm", data_dir, batch_sizes={"bitfit": 8, "default": 12},
                     tasks=["sst2", {"name": "rte", "batch_sizes": {"bitfit": 4}}],
                     runs=[{"method": "bitfit"}, {"method": "ln", "batch_size": 2}, {"method": "prefix"}])
    sizes = {(r.spec.method, r.spec.task): r.spec.train["batch_size"]
             for r in runs_of(cfg, data_dir) if r.kind == "train"}
    assert sizes == {("bitfit", "sst2"): 8, ("bitfit", "rte"): 4, ("ln", "sst2"): 2, ("ln", "rte"): 2,
                     ("prefix", "sst2"): 12, ("prefix", "rte"): 12}


def test_a_spec_two_entries_share_runs_once(data_dir):
    cfg = tiny_sweep("minilm", data_dir, runs=[{"method": "ln", "row": "LN"}, {"method": "ln", "row": "Full*",
                                                                                "group": "ablation"}])
    runs = [r for r in runs_of(cfg, data_dir) if r.kind == "train"]
    assert len(runs) == 2 * 2 and {r.row for r in runs} == {"LN"}


def test_timing_repeats_interleave_methods_and_keep_the_first_key(data_dir):
    cfg = tiny_sweep("minilm", data_dir)
    cfg["runs"][0]["group"] = "timed"  # LN beside BitFit: two methods to interleave
    one = [r for r in runs_of(cfg, data_dir) if r.kind == "efficiency"]
    cfg["efficiency"]["repeats"] = 3
    three = [r for r in runs_of(cfg, data_dir) if r.kind == "efficiency"]
    methods = [r.spec.method for r in one]
    assert len(methods) >= 2 and [r.spec.method for r in three] == methods * 3  # every method before any twice
    assert [r.key for r in three[:len(one)]] == [r.key for r in one]  # raising repeats only adds runs
    assert len({r.key for r in three}) == len(three)
    assert [r.spec.efficiency.repeat or 0 for r in three] == [i for i in range(3) for _ in one]
    assert three[-1].source.endswith("(timing 3/3)") and one[0].source.endswith("(timing)")


def test_lr_seed_names_later_seeds_at_its_best_lr(data_dir):
    """Seed 1 tries both lrs; seed 2 appears once seed 1's records exist, at the lr with the best val score."""
    from lntune.sweep.grid import plan

    cfg = tiny_sweep("minilm", data_dir, seeds=[1, 2, 3], lr_seed=1, efficiency=None,
                     runs=[{"method": "ln", "lrs": [1e-2, 1e-3], "lr_budget": 2, "tasks": ["sst2"]}])
    parsed = parse_config(copy.deepcopy(cfg), "s.yaml")
    first = plan(parsed, str(data_dir))
    assert [(r.seed, r.lr, r.picks_lr) for r in first.runs] == [(1, 1e-2, True), (1, 1e-3, True)]
    assert first.waiting == 2
    half = {first.runs[0].key: finished(first.runs[0], 0.7)}
    assert plan(parsed, str(data_dir), half).waiting == 2  # one pick still running: nothing named yet
    for best, scores in ((1e-3, (0.7, 0.8)), (1e-2, (0.8, 0.8))):  # a tie goes to the first lr of the list
        done = {r.key: finished(r, s) for r, s in zip(first.runs, scores)}
        later = [r for r in plan(parsed, str(data_dir), done).runs if not r.picks_lr]
        assert [(r.seed, r.lr) for r in later] == [(2, best), (3, best)] and all(r.spec.train["lr"] == best
                                                                                 for r in later)


def test_lr_seed_must_be_one_of_several_seeds(data_dir):
    from lntune.sweep.config import ConfigError

    for seeds in ([2, 3], [1]):
        with pytest.raises(ConfigError, match="lr_seed"):
            parse_config(tiny_sweep("minilm", data_dir, seeds=seeds, lr_seed=1), "s.yaml")
