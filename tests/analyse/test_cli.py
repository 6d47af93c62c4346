import json

import pytest
from typer.testing import CliRunner

from lntune.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, ["analyse", *[str(a) for a in args]])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.fixture(scope="module")
def fisher_dir(tokenizer, data_dir, tmp_path_factory):
    """LN Fisher of a tiny BERT on sst2 and stsb, computed once for the module."""
    import torch
    import transformers as tf
    from conftest import tiny_config

    base = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    tf.AutoModel.from_config(tiny_config("bert")).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = base.parent / "fisher"
    code, text = run(
        "fisher",
        "--model",
        base,
        "--task",
        "sst2",
        "--task",
        "stsb",
        "--examples",
        4,
        "--batch-size",
        4,
        "--ln-only",
        "--no-progress",
        "--data-dir",
        data_dir,
        "--out",
        out,
    )
    assert code == 0, text
    return base, out, text


def test_fisher_writes_ranking_heatmap_and_files(fisher_dir):
    _, out, text = fisher_dir
    assert "output.LayerNorm" in text
    for name in (
        "fisher-sst2.safetensors",
        "fisher-stsb.safetensors",
        "fisher_ranking.csv",
        "fisher_ranking.md",
        "fisher_ranking_blocks.csv",
        "fisher_ln.png",
        "fisher_ln.csv",
        "fisher_params.csv",
    ):
        assert (out / name).stat().st_size > 0, name
    header, *rows = (out / "fisher_ranking.csv").read_text().splitlines()
    assert header == "rank,component,sst2,stsb,sum"
    assert {r.split(",")[1] for r in rows} == {"embeddings.LayerNorm", "attention.output.LayerNorm", "output.LayerNorm"}
    sums = [float(r.split(",")[-1]) for r in rows]
    assert sums == sorted(sums, reverse=True) and sum(sums) == pytest.approx(2.0)  # each task's shares sum to 1
    blocks = (out / "fisher_ranking_blocks.csv").read_text()
    assert "embeddings.LayerNorm" not in blocks and blocks.count("\n") == 3  # paper 002 table 1: inside blocks only


def test_masks_from_the_cli_train_with_ln_mask(fisher_dir, data_dir, tmp_path):
    from lntune.analyse.files import load_tensors

    base, out, _ = fisher_dir
    n = (1 + 2 * 4) * 2 * 32  # LN elements of the tiny BERT
    for kind in ("individual", "global", "cv", "random"):
        code, text = run(
            "mask", "--fisher", out, "--kind", kind, "--fraction", 0.2, "--task", "stsb", "--out", tmp_path / "m"
        )
        assert code == 0, text
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == [
        "mask-cv-stsb-f0.2.safetensors",
        "mask-global-f0.2.safetensors",
        "mask-individual-stsb-f0.2.safetensors",
        "mask-random-s42-f0.2.safetensors",
    ]
    masks, meta = load_tensors(tmp_path / "m" / "mask-cv-stsb-f0.2.safetensors")
    assert meta["selected"] == round(0.2 * n) == sum(int(m.sum()) for m in masks.values()) and meta["kind"] == "cv"
    result = runner.invoke(
        app,
        [
            str(a)
            for a in (
                "train",
                "--model",
                base,
                "--task",
                "stsb",
                "--ln-mask",
                tmp_path / "m" / "mask-individual-stsb-f0.2.safetensors",
                "--max-steps",
                1,
                "--train-limit",
                16,
                "--eval-limit",
                16,
                "--no-progress",
                "--data-dir",
                data_dir,
                "--out",
                tmp_path / "s",
            )
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s" / "skin.json").read_text())["counts"]["tuned"] == round(0.2 * n)
    code, text = run("change", "--skin", tmp_path / "s", "--out", tmp_path / "c")
    assert code == 0, text
    for name in (
        "change_heatmap.png",
        "change_heatmap.csv",
        "ln_change.png",
        "ln_change.csv",
        "change_ranking.csv",
        "change.json",
    ):
        assert (tmp_path / "c" / name).stat().st_size > 0, name
    assert (tmp_path / "c" / "change_ranking.csv").read_text().splitlines()[1].split(",")[1].endswith("LayerNorm")


def test_curve_cli_uses_the_fisher_folder(fisher_dir, data_dir, tmp_path):
    base, out, _ = fisher_dir
    code, text = run(
        "curve",
        "--model",
        base,
        "--task",
        "sst2",
        "--fisher",
        out,
        "--fraction",
        0.5,
        "--kind",
        "cv",
        "--max-steps",
        1,
        "--train-limit",
        16,
        "--eval-limit",
        16,
        "--no-progress",
        "--data-dir",
        data_dir,
        "--out",
        tmp_path / "curve",
    )
    assert code == 0, text
    assert "sst2\tcv\tf=0.5\taccuracy" in text
    assert (tmp_path / "curve" / "curve.png").exists() and (
        tmp_path / "curve" / "masks" / "sst2" / "mask-cv-sst2-f0.5.safetensors"
    ).exists()


def test_errors_say_what_to_do(tmp_path):
    code, text = run("mask", "--fisher", tmp_path / "nothing", "--kind", "global")
    assert code == 2 and "lntune analyse fisher" in text
    code, text = run("change", "--tuned", tmp_path, "--out", tmp_path / "c")
    assert code == 2 and "neither a skin" in text
    code, text = run("change", "--tuned", tmp_path, "--task", "sst2", "--task", "rte")
    assert code == 2 and "one task per fine-tuned model" in text
