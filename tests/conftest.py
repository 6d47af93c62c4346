"""Tiny models built from configs, with the embedded MiniLM tokenizer, for fast tests."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run by default, so a CI run on a fresh clone (no example
# database) cannot turn red on a new random draw; HYPOTHESIS_PROFILE=explore draws fresh examples each run,
# which is how new edge cases are found (then fixed and kept as explicit cases).
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

from lntune.model import wrap  # noqa: E402
from lntune.model.load import resolve  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
H, L = 32, 4  # tiny hidden size and depth


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models spend more on thread hand-offs than on maths, badly so on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"the shared data folder is expected at {DATA_DIR}"
    return DATA_DIR


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve("minilm"))
    tok.eos_token = "[SEP]"  # decoders below need an end-of-sequence token
    return tok


def tiny_config(arch: str, head: str = "classification"):
    import transformers as tf

    vocab = 30522
    if arch == "bert":
        return tf.BertConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=128, num_labels=2,
                             initializer_range=0.2)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=H, n_layer=L, n_head=2, n_positions=128, num_labels=2,
                             pad_token_id=0)
    if arch == "llama":
        return tf.LlamaConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                              num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
                              num_labels=2, pad_token_id=0)
    raise ValueError(arch)


def tiny_model(arch: str, head: str = "classification", seed: int = 0):
    import transformers as tf

    torch.manual_seed(seed)
    config = tiny_config(arch)
    if head == "causal-lm":
        return tf.AutoModelForCausalLM.from_config(config)
    if head == "regression":
        config.num_labels, config.problem_type = 1, "regression"
    return tf.AutoModelForSequenceClassification.from_config(config)


HEAD_NAMES = {"bert": ("classifier.bias", "classifier.weight"), "gpt2": ("score.weight",), "llama": ("score.weight",)}


@pytest.fixture
def make_lm(tokenizer):
    """make_lm(arch, head) -> LoadedModel around a tiny randomly initialised model."""

    def make(arch: str = "bert", head: str = "classification", seed: int = 0):
        model = tiny_model(arch, head, seed)
        heads = () if head == "causal-lm" else HEAD_NAMES[arch]
        return wrap(model, tokenizer, f"tiny-{arch}", head, heads)

    return make


@pytest.fixture
def tiny_dir(tmp_path, tokenizer):
    """save a tiny model without its head (like a pretrained checkpoint) to a folder."""

    def make(arch: str = "bert", seed: int = 0, causal: bool = False) -> Path:
        import transformers as tf

        torch.manual_seed(seed)
        base = tiny_model(arch, "causal-lm", seed) if causal else tf.AutoModel.from_config(tiny_config(arch))
        path = tmp_path / f"{arch}-{seed}-{'lm' if causal else 'base'}"
        base.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    return make


# ---------------------------------------------------------------------------------------------------
# Test tiers. `python -m pytest -m fast` runs the fast tier: unit tests on tiny models, in this
# process, in about 2 minutes on 2 cores. Every test is marked `fast` here unless it carries one of
#   processes   it starts OS processes: subprocess, torchrun, Ray, the sweep's multiprocessing workers,
#               `lntune serve` in a child process
#   real_model  it loads the embedded MiniLM ("minilm") or SmolLM2 ("smollm2") weights (the MiniLM
#               *tokenizer*, which the `tokenizer` fixture loads, does not count)
#   slow        tiny models and in-process only, but long: end-to-end training runs, CLI train/eval
#               round trips, many trainings (about 2 s or more each on one busy core)
# given by the tables below (by the test's module, its function, or a fixture it uses), or by its own
# module (`pytestmark = pytest.mark.slow`) or decorator. In-process things stay in the fast tier:
# typer's CliRunner (when the command starts no process and loads no real model), threads,
# FastAPI's TestClient and an in-process uvicorn server on a thread bound to 127.0.0.1.
# The full suite is `python -m pytest`; `-m "not fast"` runs the rest. A new test is fast by default:
# list it below when it starts processes, loads a real model or takes seconds
# (tests/test_tiers.py checks that every entry still names a module or function).
# ---------------------------------------------------------------------------------------------------
PROCESSES, REAL_MODEL, SLOW = "processes", "real_model", "slow"
TIER_MARKERS = (PROCESSES, REAL_MODEL, SLOW)

# Fixtures whose use puts a test in a tier (the test may get them indirectly through another fixture).
TIER_FIXTURES = {
    "reference": PROCESSES,  # tests/sweep/conftest.py: the tiny sweep, run on local worker processes
    "local_ray": PROCESSES,  # tests/sweep/test_ray.py: a local Ray cluster
}

# "module" (path under tests/) or "module::test_function" (every parametrisation) -> tier.
TIER_TESTS = {
    # processes
    "sweep/test_local.py": PROCESSES,  # a forked sweep worker and its driver, SIGKILLed
    "sweep/test_ray.py": PROCESSES,
    "sweep/test_resume.py": PROCESSES,  # `python -m lntune.sweep.cli` killed and resumed
    "sweep/test_sweep.py": PROCESSES,  # sweeps on local worker processes
    "sweep/test_store.py::test_the_commit_is_read_from_a_clone_and_from_a_worktree": PROCESSES,  # git
    "train/test_distributed.py::test_two_cpu_processes_train_one_model": PROCESSES,  # torchrun
    "train/test_resume.py::test_sigkilled_cli_run_resumes_to_the_same_skin": PROCESSES,
    "train/test_step_time.py": PROCESSES,  # benchmarks/step_time.py in a subprocess
    "serve/test_serve_limits.py::test_refused_big_requests_do_not_slow_small_ones": PROCESSES,  # lntune serve
    "data/test_local_labels.py::test_label_order_does_not_depend_on_the_hash_seed": PROCESSES,  # 3 interpreters
    "test_package.py::test_cli_import_stays_light": PROCESSES,  # a fresh interpreter
    "test_package.py::test_help_runs_without_heavy_imports": PROCESSES,
    "test_docs_commands.py::test_every_line_runs": PROCESSES,
    "test_plugins.py::test_the_command_line_lists_a_plugin_and_says_when_one_is_broken": PROCESSES,  # lntune, twice
    "spec/test_train_option_one_place.py": PROCESSES,  # a copy of the package in a fresh interpreter  # every README/docs line, as commands
    # real models
    "model/test_load.py::test_minilm_alias_loads_the_embedded_weights": REAL_MODEL,
    "model/test_load.py::test_smollm2_alias_dequantises_once_and_caches": REAL_MODEL,
    "interop/test_hub.py::test_embedded_base_records_its_package_and_hub_origin": REAL_MODEL,
    "interop/test_peft.py::test_minilm_ln_skin_exports_with_equal_outputs": REAL_MODEL,
    "serve/test_serve_generate.py::test_smollm2_mixed_batch_equals_each_skin_alone": REAL_MODEL,
    "serve/test_serve_mixed.py::test_embedded_minilm_mixed_equals_separate": REAL_MODEL,
    # test_package.py::test_examples_run: the parametrisations whose docstring examples load an
    # embedded model are found by reading the examples (_example_loads_a_real_model)
    # slow
    "golden": SLOW,  # every method x head trained a few steps (~45 s); run it alone: pytest tests/golden
    "report/test_sequential_coverage.py": SLOW,  # 2,000 simulated contrasts and 300 bootstraps (~5 s)
}

# slow: about 1.5 s or more per test (per parametrisation) on one busy core, measured when the tiers
# were set up: trainings, CLI train/eval runs, skin round trips, servers over several skins.
ALL = "the whole module"
SLOW_TESTS = {
    "analyse/test_change.py": ("test_skin_change_matches_its_tensors",),
    "analyse/test_cli.py": (
        "test_curve_cli_uses_the_fisher_folder",
        "test_fisher_writes_ranking_heatmap_and_files",
        "test_masks_from_the_cli_train_with_ln_mask",
    ),
    "analyse/test_curve.py": ALL,
    "analyse/test_fisher.py": ("test_task_fisher_ln_only_on_real_data",),
    "data/test_local_gen.py": ("test_cli_trains_and_generates_on_local_files",),
    "evaluate/test_generate.py": (
        "test_cli_train_generate_then_eval_reproduces",
        "test_generation_metrics_on_grouped_dev_inputs",
    ),
    "evaluate/test_nlg_metrics.py": ("test_meteor_from_debian_wordnet_files_counts_synonyms",),  # reads WordNet
    "interop/test_cli.py": ALL,
    "interop/test_hub.py": ("test_every_skin_has_a_model_card", "test_serve_takes_a_repo_id"),
    "interop/test_merge.py": ("test_merged_folder_loads_in_plain_transformers", "test_unmergeable_methods_are_refused"),
    "interop/test_peft.py": (
        "test_causal_lm_ln_skin_round_trip",
        "test_export_loads_in_peft_and_transformers_with_equal_outputs",
        "test_import_gives_a_skin_with_the_same_outputs",
    ),
    "method/test_methods.py": ("test_every_method_round_trips_as_a_skin",),
    "method/test_prefix.py": (
        "test_reparam_skin_stores_plain_vectors_and_reloads_to_the_same_outputs",
        "test_skin_round_trip",
    ),
    "method/test_threev.py": ("test_skin_round_trip",),
    "method/test_traits.py": ("test_the_cli_lists_it_and_trains_it",),
    "report/test_claims.py": ("test_write_report_with_a_design_writes_claims_and_the_forest_plot",),
    "report/test_converged_report.py": (
        "test_a_row_that_keeps_its_last_evaluation_too_often_withholds_its_verdicts",
        "test_holm_runs_within_each_family_and_the_descriptive_family_has_no_verdict",
        "test_the_baseline_table_tells_families_from_runs",
    ),
    "serve/test_serve_ask.py": (
        "test_a_causal_lm_skin_generates_what_the_bank_generates",
        "test_classification_answers_equal_the_skin_applied_alone",
    ),
    "serve/test_serve_bank.py": (
        "test_a_model_is_served_by_one_bank_and_only_unchanged",
        "test_non_ln_skins_other_bases_and_other_heads_are_refused",
    ),
    "serve/test_serve_generate.py": ("test_mixed_batch_generates_what_each_skin_generates_alone",),
    "serve/test_serve_mixed.py": ("test_mixed_batch_equals_each_skin_alone",),
    "serve/test_serve_no_500.py": ("test_the_fuzzer_covers_every_operation",),
    "serve/test_serve_openai.py": ("test_a_stream_whose_client_leaves_stops_generating",),
    "serve/test_serve_security.py": ("test_skin_paths_are_confined_to_the_root_symlinks_included",),
    "serve/test_serve_server.py": (
        "test_concurrent_requests_do_not_mix_skins",
        "test_predict_answers_each_row_with_its_skin",
        "test_skins_are_added_and_removed_while_serving",
    ),
    "test_api_pairing.py": ALL,
    "test_cli.py": (
        "test_cli_decoder_run_on_e2e_selects_gains",
        "test_cli_selects_bias_of_ffn_norms_in_the_top_half",
        "test_same_seed_gives_a_bit_identical_skin",
        "test_eval_with_generation_reads_the_skin_and_loads_the_base_once",
        "test_train_then_eval_reproduces_the_metrics",
    ),
    "test_heads.py": ("test_zero_epochs_scores_the_untrained_model",),
    "test_output_safety.py": (
        "test_a_folder_without_skin_json_is_not_a_finished_skin",
        "test_existing_skin_is_refused_without_overwrite",
        "test_overwrite_replaces_the_skin",
    ),
    "test_skin.py": (
        "test_bf16_autocast_run_evaluates_identically_from_its_skin",
        "test_corrupt_skins_are_refused",
        "test_masked_skin_stores_only_masked_elements",
        "test_saved_skin_json_fits_the_schema",
        "test_skin_for_another_base_is_refused",
        "test_skin_round_trips_bit_exactly",
    ),
    "test_skin_safety.py": ("test_a_mask_of_the_wrong_shape_is_refused", "test_a_mask_that_is_not_bool_is_refused"),
    "train/test_config_file.py": ("test_cli_config_with_flags_winning",),
    "train/test_grad_accum.py": ("test_accumulated_steps_equal_one_large_batch",),
    "train/test_log.py": ("test_cli_grad_accum_and_report_to", "test_cli_writes_metrics_jsonl_beside_the_skin"),
    "train/test_resume.py": ("test_resume_errors_are_one_line",),
}
for _module, _names in SLOW_TESTS.items():
    TIER_TESTS.update({_module: SLOW} if _names == ALL else {f"{_module}::{n}": SLOW for n in _names})

_TESTS_DIR = Path(__file__).resolve().parent
_ALIAS = re.compile(r"""["'](minilm|smollm2)["']""")


def _example_loads_a_real_model(name: str) -> bool:
    """Whether the docstring examples of `lntune.<name>` that doctest runs (not +SKIP) load an embedded model."""
    import doctest

    import lntune

    obj = getattr(lntune, name, None)
    if obj is None:
        return False
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, module=False, globs={})
    return any(_ALIAS.search(ex.source) and not ex.options.get(doctest.SKIP) for t in tests for ex in t.examples)


def _tier_of(item) -> str | None:
    rel = Path(str(item.path)).resolve().relative_to(_TESTS_DIR).as_posix()
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    for key in (f"{rel}::{name}", rel, *(p.as_posix() for p in Path(rel).parents if p != Path("."))):
        if key in TIER_TESTS:
            return TIER_TESTS[key]
    for fixture in item.fixturenames:
        if fixture in TIER_FIXTURES:
            return TIER_FIXTURES[fixture]
    if rel == "test_package.py" and name == "test_examples_run" and hasattr(item, "callspec"):
        if _example_loads_a_real_model(item.callspec.params.get("name", "")):
            return REAL_MODEL
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(m) for m in TIER_MARKERS):
            tier = _tier_of(item)
            if tier is not None:
                item.add_marker(getattr(pytest.mark, tier))
        if not any(item.get_closest_marker(m) for m in TIER_MARKERS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture
def hub_answers(monkeypatch):
    """A Hub that answers: for tests that stand a fake in for datasets.load_dataset or huggingface_hub, so the
    offline probe (lntune.offline.hub_offline) does not short-cut them on a machine without network."""
    monkeypatch.setattr("lntune.offline.hub_offline", lambda: None)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
