import json

from typer.testing import CliRunner

from lntune.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def fast(data_dir, out):
    return ["--train-limit", 64, "--eval-limit", 64, "--epochs", 1, "--batch-size", 16,
            "--no-progress", "--data-dir", data_dir, "--out", out]


def test_train_then_eval_reproduces_the_metrics(tiny_dir, data_dir, tmp_path):
    code, out = run("train", "--model", tiny_dir("bert"), *fast(data_dir, tmp_path / "s"))
    assert code == 0, out
    assert "ln on" in out and "% of" in out and "dev (best by loss" in out
    code, out = run("eval", "--skin", tmp_path / "s", "--data-dir", data_dir)
    assert code == 0, out
    lines = [l for l in out.splitlines() if ": " in l]
    assert len(lines) == 4 and all(l.endswith("(same as saved)") for l in lines), out  # loss, accuracy, f1, mcc


def test_cli_selects_bias_of_ffn_norms_in_the_top_half(tiny_dir, data_dir, tmp_path):
    code, out = run("train", "--model", tiny_dir("bert"), "--method", "ln", "--ln-terms", "bias",
                    "--ln-modules", "ffn", "--ln-layers", "top-half", *fast(data_dir, tmp_path / "s"))
    assert code == 0, out
    meta = json.loads((tmp_path / "s" / "skin.json").read_text())
    assert meta["tuned"] == ["bert.encoder.layer.2.output.LayerNorm.bias", "bert.encoder.layer.3.output.LayerNorm.bias"]
    assert meta["counts"]["tuned"] == 64


def test_cli_decoder_run_on_e2e_selects_gains(tiny_dir, data_dir, tmp_path):
    model = tiny_dir("llama", causal=True)
    args = ["train", "--task", "e2e", "--model", model, "--ln-terms", "gain", "--ln-modules", "ffn",
            "--ln-layers", "top-half", "--max-steps", 2, "--lr", 1e-3, *fast(data_dir, tmp_path / "s")]
    code, out = run(*args)
    assert code == 0, out
    meta = json.loads((tmp_path / "s" / "skin.json").read_text())
    assert meta["tuned"] == [f"model.layers.{i}.post_attention_layernorm.weight" for i in (2, 3)]
    assert meta["head"] == [] and "perplexity" in meta["metrics"]
    code, out = run(*[a if a != "gain" else "bias" for a in args], "--overwrite")
    assert code == 2 and "gains only" in out
    assert (tmp_path / "s" / "skin.json").exists()  # refused before training: the skin above stays


def test_bad_data_file_exits_with_the_file_named(tiny_dir, tmp_path):
    folder = tmp_path / "data" / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tstars\ngreat\t5\n")
    code, out = run("train", "--model", tiny_dir("bert"), *fast(tmp_path / "data", tmp_path / "s"))
    assert code == 2
    assert "train.tsv: missing column(s) 'label'" in out
    assert not (tmp_path / "s").exists()


def test_norms_lists_every_layer(tiny_dir):
    code, out = run("norms", "--model", tiny_dir("gpt2"))
    assert code == 0, out
    assert "transformer.ln_f" in out and out.count("mha") == 4


def test_same_seed_gives_a_bit_identical_skin(tiny_dir, data_dir, tmp_path):
    """The task head is drawn from the run's seed, so two runs with one seed write the same bytes."""
    model = tiny_dir("bert")
    tensors = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        code, out = run("train", "--model", model, "--seed", seed, *fast(data_dir, tmp_path / name))
        assert code == 0, out
        tensors.append((tmp_path / name / "tuned.safetensors").read_bytes())
    assert tensors[0] == tensors[1]
    assert tensors[0] != tensors[2]


def test_eval_with_generation_reads_the_skin_and_loads_the_base_once(tiny_dir, data_dir, tmp_path, monkeypatch):
    import lntune.skin as skin_mod

    model = tiny_dir("llama", causal=True)
    code, out = run("train", "--task", "e2e", "--model", model, "--max-steps", 2, "--generate", 2,
                    *fast(data_dir, tmp_path / "s"))
    assert code == 0, out
    reads, loads = [], []
    read_skin, load_model = skin_mod.read_skin, skin_mod.load_model
    monkeypatch.setattr(skin_mod, "read_skin", lambda *a, **k: reads.append(a[0]) or read_skin(*a, **k))
    monkeypatch.setattr(skin_mod, "load_model", lambda *a, **k: loads.append(a[0]) or load_model(*a, **k))
    code, out = run("eval", "--skin", tmp_path / "s", "--data-dir", data_dir)
    assert code == 0, out
    assert "perplexity" in out and "generation on 2 dev inputs" in out
    assert all(l.endswith("(same as saved)") for l in out.splitlines() if l.startswith(("loss:", "perplexity:")))
    assert len(reads) == 1 and len(loads) == 1, (reads, loads)
