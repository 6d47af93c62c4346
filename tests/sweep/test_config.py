import copy
from pathlib import Path

import pytest

from lntune.sweep.config import DEFAULT_LRS, ConfigError, load_config
from lntune.sweep.grid import expand

from .conftest import tiny_sweep, write_yaml

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def base() -> dict:
    return tiny_sweep("minilm", "/nowhere")


def error_of(tmp_path, cfg) -> str:
    path = write_yaml(tmp_path / "s.yaml", cfg)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg  # every error names the file
    return msg


def mutate(fn) -> dict:
    cfg = copy.deepcopy(base())
    fn(cfg)
    return cfg


@pytest.mark.parametrize("change, field, words", [
    (lambda c: c.update(epochs=3), "epochs", "unknown key"),
    (lambda c: c["runs"][1].update(method="bitfat"), "runs[1].method", "unknown method"),
    (lambda c: c["runs"][1].update(options={"size": 3}), "runs[1].options", "size"),
    (lambda c: c["runs"][0].update(lrs=["fast"]), "runs[0].lrs[0]", "a number"),
    (lambda c: c["runs"][0].update(colour="red"), "runs[0].colour", "unknown key"),
    (lambda c: c["runs"][1].update(mask={"kind": "global", "fraction": 0.5}), "runs[1].mask", "method: ln"),
    (lambda c: c["runs"][2]["mask"].update(fraction=1.5), "runs[2].mask.fraction[0]", "(0, 1]"),
    (lambda c: c["runs"][2]["mask"].update(kind="best"), "runs[2].mask.kind[0]", "choose from"),
    (lambda c: c.update(tasks=["sst2", "nope"]), "tasks[1].name", "unknown task"),
    (lambda c: c["runs"][0].update(tasks=["cb"]), "runs[0].tasks", "not under tasks"),
    (lambda c: c["train"].update(batch_size="big"), "train.batch_size", "an integer"),
    (lambda c: c.update(fisher={"tasks": ["sst2"]}), "runs[2].mask.kind", "another task"),
    (lambda c: c.update(tasks=["sst2", "conll04"], runs=[{"method": "3v"}]), "runs[0].tasks", "3v cannot run"),
    (lambda c: c.update(tasks=["sst2", {"name": "rte", "test_split": "test"}]), "tasks[1].test_split", "rte"),
    (lambda c: c.pop("runs"), "top level", "missing 'runs'"),
    (lambda c: c.update(models=["minilm"]), "model", "exactly one"),
])
def test_config_errors_name_the_file_and_field(tmp_path, change, field, words):
    msg = error_of(tmp_path, mutate(change))
    assert f": {field}: " in msg and words in msg, msg


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(path)


def test_defaults_and_coercions(tmp_path):
    cfg = load_config(write_yaml(tmp_path / "s.yaml", mutate(lambda c: c.update(
        lrs={"other": ["1e-3"]}, tasks=["sst2", {"name": "rte", "val_limit": 0.25, "max_length": 64}]))))
    assert cfg.lrs["other"] == [1e-3] and cfg.lrs["ln"] == DEFAULT_LRS["ln"]  # PyYAML reads 1e-3 as a string
    rte = cfg.task("rte")
    assert rte.val_limit == 0.25 and rte.train == {"max_length": 64} and rte.train_limit == 32
    assert cfg.task("sst2").test_split == "dev" and cfg.runs[2].group == "fraction"
    assert cfg.runs[2].mask == {"kinds": ["individual", "cv", "random"], "fractions": [0.5], "seed": None}


def grid_size(cfg) -> int:
    """Training runs by counting: models x entries x tasks x masks x seeds x lrs (no spec is shared)."""
    n = 0
    for m in cfg.models:
        for e in cfg.runs:
            if e.models and m.name not in e.models:
                continue
            for t in cfg.tasks:
                if (m.tasks and t.name not in m.tasks) or (e.tasks and t.name not in e.tasks):
                    continue
                family = "ln" if "ln" in e.method.split("+") else ("full" if e.method == "full" else "other")
                lrs = (e.lrs or t.lrs or cfg.lrs[family])[: e.lr_budget or cfg.lr_budget]
                masks = len(e.mask["kinds"]) * len(e.mask["fractions"]) if e.mask else 1
                n += masks * len(e.seeds or cfg.seeds) * len(lrs)
    return n


def test_paper_quick_parses_and_expands():
    cfg = load_config(BENCH / "paper_quick.yaml")
    runs = expand(cfg)
    assert {r.group for r in runs} == {"main", "unified", "ablation", "subset", "fraction", "efficiency"}
    assert len(runs) == len({r.key for r in runs}) == 139 + 21
    assert sum(r.kind == "train" for r in runs) == grid_size(cfg) == 139
    assert sum(r.kind == "efficiency" for r in runs) == 7 * cfg.efficiency.repeats == 21  # methods of table 1
    assert cfg.workers == 2 and cfg.threads == 1 and {m.name for m in cfg.models} == {"minilm"}


def test_paper_full_parses_and_expands_offline():
    cfg = load_config(BENCH / "paper_full.yaml")
    runs = expand(cfg, data_dir="/nowhere")  # hub models and data: nothing is downloaded to expand
    assert len(runs) == len({r.key for r in runs}) == 3390 + 20 * 3  # training + timing (20 x 3 repeats)
    assert sum(r.kind == "train" for r in runs) == grid_size(cfg)
    assert {r.spec.model for r in runs} == {"bert-base-uncased", "bert-large-uncased", "gpt2-medium",
                                              "bert-large-cased"}
    prefix = {r.spec.model: r.spec.options["length"] for r in runs if r.spec.method == "prefix"}
    assert prefix == {"bert-base-uncased": 16, "bert-large-uncased": 24, "gpt2-medium": 16}  # paper 000 sec. 4.1
    sst2 = {(r.spec.model, r.spec.method): r.spec.train["batch_size"] for r in runs
            if r.spec.task == "sst2" and r.kind == "train" and r.group == "main"}
    assert sst2[("bert-base-uncased", "full")] == 256 and sst2[("bert-large-uncased", "mam")] == 256  # table 5
    assert sst2[("bert-base-uncased", "ln")] == 392
    e2e = [r for r in runs if r.spec.task == "e2e" and r.kind == "train"]
    assert {r.lr for r in e2e} == {2e-4} and {r.metric for r in e2e} == {"bleu"}
    assert {r.spec.train["epochs"] for r in e2e} == {20}


def test_paper_cpu_parses_and_pairs_its_runs():
    from lntune.sweep.grid import plan

    cfg = load_config(BENCH / "paper_cpu.yaml")
    first = plan(cfg)
    train = [r for r in first.runs if r.kind == "train"]
    assert all(r.picks_lr and r.seed == cfg.lr_seed == 0 for r in train)  # round one: seed 0 tries each lr list
    # once the lr is chosen: 5 reported seeds per (row, task), seeds 1-10 on the secondary rows, and seeds 6-8
    # added to the 5 primary rows on 3 tasks (the design's power rule)
    assert len(train) == 47 and first.waiting == 135 + 6 * 5 + 5 * 3 * 3
    assert {r.spec.train["batch_size"] for r in train} == {16}  # one batch size: the same batches
    assert {r.spec.train["head_lr"] for r in train} == {3e-3}  # one head lr for every method
    rows = {r.row for r in train}
    assert {"LN (002 set)", "Random (all weights)", "Random (blocks)", "Head only"} <= rows
    ln002 = next(r for r in train if r.row == "LN (002 set)")
    assert ln002.spec.options["modules"] == "ffn"
    sick = {r.spec.eval_limit for r in train if r.spec.task == "sick"}
    assert sick == {1500} and cfg.analysis.margin == 1.5


def test_train_limit_0_is_the_whole_split_as_on_the_command_line(data_dir):
    import copy

    from lntune.sweep.config import parse_config
    from lntune.sweep.grid import expand

    from .conftest import tiny_sweep

    base = tiny_sweep("minilm", data_dir, efficiency=None, runs=[{"method": "ln", "tasks": ["sst2"]}])
    keys = []
    for limits in ({"train_limit": None, "eval_limit": None}, {"train_limit": 0, "eval_limit": 0}):
        cfg = parse_config(copy.deepcopy({**base, **limits}), "s.yaml")
        assert cfg.tasks[0].train_limit is None and cfg.tasks[0].eval_limit is None
        keys.append([r.key for r in expand(cfg, str(data_dir))])
    assert keys[0] == keys[1]
