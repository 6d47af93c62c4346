"""Skins are data from whoever wrote them (issue 15, Skins): skin.json is checked against a schema, non-finite
tensors are refused at save and at load, masks must fit, and files a skin names are read without their
contents ever reaching an error message; `lntune eval --task` names the data instead."""
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from lntune.api import evaluate_skin, train_task
from lntune.cli import app
from lntune.errors import LntuneError, SkinError
from lntune.skin import SKIN_JSON, TENSORS, _sha256, load_skin, read_skin, save_skin
from lntune.train import TrainConfig

FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)
SECRET = "TOP-SECRET-e3b0c44298fc"


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output  # click 8.2+: output holds stderr too


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, tokenizer, data_dir, one_thread):
    """A tiny BERT LN-tuned on 32 SST-2 rows, trained once per module: (base folder, skin folder)."""
    import transformers as tf
    from conftest import tiny_config

    root = tmp_path_factory.mktemp("skin-safety")
    torch.manual_seed(0)
    tf.AutoModel.from_config(tiny_config("bert")).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    train_task("sst2", str(root / "bert"), "ln", {}, FAST, root / "skin", data_dir, 32, 32)
    return root / "bert", root / "skin"


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of the module's skin that a test may damage: (base folder, skin folder)."""
    base, skin = trained_once
    shutil.copytree(skin, tmp_path / "skin")
    return base, tmp_path / "skin"


def _meta(skin):
    return json.loads((skin / SKIN_JSON).read_text())


def _write(skin, meta):
    (skin / SKIN_JSON).write_text(json.dumps(meta))


def _rewrite_tensors(skin, tensors):
    """Replace tuned.safetensors and re-vouch for it, as someone crafting a skin would."""
    save_file(tensors, str(skin / TENSORS))
    meta = _meta(skin)
    meta["tensors_sha256"] = _sha256(skin / TENSORS)
    _write(skin, meta)


def _edit(meta, path, value):
    *parents, last = path.split(".")
    node = meta
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


# Each: what to do to skin.json, and words the one-line error must hold.
BAD_RECORDS = {
    "a list": (lambda m: [m], "a list, not a skin record"),
    "a string": (lambda m: "skin", "a string, not a skin record"),
    "no base": (lambda m: _edit(m, "base", KeyError), "base is missing"),
    "no train": (lambda m: _edit(m, "train", KeyError), "train.seed is missing"),
    "no metrics": (lambda m: _edit(m, "metrics", KeyError), "metrics is missing"),
    "no task": (lambda m: _edit(m, "task", KeyError), "task.name is missing"),
    "base is a list": (lambda m: _edit(m, "base", ["minilm"]), "base: input should be"),
    "unknown dtype": (lambda m: _edit(m, "base.dtype", "float64"), "base.dtype"),
    "unknown head": (lambda m: _edit(m, "base.head", "classifier"), "base.head"),
    "eval batch size 0": (lambda m: _edit(m, "train.eval_batch_size", 0),
                          "train.eval_batch_size 0: must be an integer >= 1"),
    "eval batch size text": (lambda m: _edit(m, "train.eval_batch_size", "64"), "train.eval_batch_size '64'"),
    "max length -1": (lambda m: _edit(m, "train.max_length", -1), "train.max_length -1"),
    "unknown mixed precision": (lambda m: _edit(m, "train.mixed_precision", "fp8"), "train.mixed_precision 'fp8'"),
    "eval limit -5": (lambda m: _edit(m, "data.eval_limit", -5), "data.eval_limit"),
    "tuned not a list": (lambda m: _edit(m, "tuned", "bert"), "tuned: input should be a valid list"),
    "labels not strings": (lambda m: _edit(m, "task.labels", [0, 1]), "task.labels.0"),
    "unknown method": (lambda m: _edit(m, "method", "magic"), "method 'magic' is not a method this lntune has"),
    "newer format": (lambda m: _edit(m, "format", "lntune-skin/2"), "written by a newer lntune"),
    "foreign format": (lambda m: _edit(m, "format", "peft/1"), "not an lntune skin format"),
    "bad checksum field": (lambda m: _edit(m, "tensors_sha256", 5), "tensors_sha256"),
    "rebuild names a mask file": (lambda m: _edit(m, "rebuild.mask", "/etc/passwd"), "rebuild names a mask file"),
    "not UTF-8": (None, "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_a_bad_skin_json_is_one_line_naming_the_file(trained, data_dir, case):
    """Each of these ended in a KeyError/AttributeError/TypeError/ValueError traceback before."""
    base, skin = trained
    change, words = BAD_RECORDS[case]
    if change is None:
        (skin / SKIN_JSON).write_bytes(b'{"base": "\xff\xfe"}')
    else:
        meta = _meta(skin)
        new = change(meta)
        _write(skin, meta if new is None else new)
    for call in (lambda: evaluate_skin(skin, data_dir), lambda: read_skin(skin, require=("metrics", "train.seed",
                                                                                          "task.name"))):
        with pytest.raises(LntuneError) as e:
            call()
        assert isinstance(e.value, SkinError)
        message = str(e.value)
        assert "\n" not in message and str(skin / SKIN_JSON) in message and words in message, message
    code, out = run("eval", "--skin", skin, "--data-dir", data_dir)
    assert code == 2 and "Traceback" not in out and words in out, out
    assert len(out.strip().splitlines()) == 1, out


def test_a_skin_without_a_format_is_read_as_version_1(trained, data_dir):
    base, skin = trained
    before = evaluate_skin(skin, data_dir)
    meta = _meta(skin)
    assert meta["format"] == "lntune-skin/1"
    del meta["format"]
    _write(skin, meta)
    assert read_skin(skin).format == "lntune-skin/1"
    assert evaluate_skin(skin, data_dir) == before


def test_load_needs_only_what_loading_reads(trained):
    """A skin saved through the API with a bare record (no train/metrics) still loads; eval says what it lacks."""
    base, skin = trained
    meta = _meta(skin)
    for key in ("train", "metrics", "data"):
        del meta[key]
    _write(skin, meta)
    load_skin(skin)
    with pytest.raises(SkinError, match="data.eval_limit is missing, and evaluating the skin needs it"):
        evaluate_skin(skin)


def test_a_mislabelled_record_is_refused_before_anything_is_saved(make_lm, tmp_path):
    from lntune.method import build_method, prepare

    tuning = prepare(make_lm("bert"), build_method("ln"))
    out = tmp_path / "skin"
    with pytest.raises(SkinError, match=r"skin\.json \(not saved\): not a valid skin record: train.eval_batch_size 0"):
        save_skin(out, tuning, {"train": {"eval_batch_size": 0}})
    assert not out.exists()


def test_a_key_the_schema_lacks_is_refused_before_anything_is_saved(make_lm, tmp_path):
    """Readers keep keys they do not know (a newer lntune's skins); this version's writer adds none."""
    from lntune.method import build_method, prepare

    tuning = prepare(make_lm("bert"), build_method("ln"))
    out = tmp_path / "skin"
    with pytest.raises(SkinError, match=r"skin\.json \(not saved\): 'metric' is not a skin\.json key"):
        save_skin(out, tuning, {"train": {}, "metric": {"accuracy": 0.5}})  # metrics, misspelt
    assert not out.exists()


def test_the_skin_schema_lists_every_key_a_run_writes():
    from lntune.skin_schema import SkinRecord
    from lntune.spec.results import RunRecord

    assert set(RunRecord.model_fields) <= set(SkinRecord.model_fields)


# --- non-finite tensors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_tensors_are_refused_at_save_before_anything_is_written(make_lm, tmp_path, bad):
    from lntune.method import build_method, prepare

    tuning = prepare(make_lm("bert"), build_method("ln"))
    with torch.no_grad():
        tuning.tuned[3].param[5] = bad
    out = tmp_path / "new" / "skin"
    with pytest.raises(SkinError) as e:
        save_skin(out, tuning, {"train": {}})
    assert f"tensor {tuning.tuned[3].name} holds 1 NaN/inf value(s)" in str(e.value)
    assert str(out) in str(e.value) and "not saved" in str(e.value)
    assert not (tmp_path / "new").exists()  # not even the folder

    existing = tmp_path / "old"  # an existing skin is left whole
    with torch.no_grad():
        tuning.tuned[3].param[5] = 0.0
    save_skin(existing, tuning, {"train": {}})
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    with torch.no_grad():
        tuning.tuned[3].param[5] = bad
    with pytest.raises(SkinError, match="NaN/inf"):
        save_skin(existing, tuning, {"train": {}})
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before


def test_non_finite_tensors_are_refused_at_load(trained, data_dir):
    base, skin = trained
    tensors = load_file(str(skin / TENSORS))
    name = "classifier.weight"
    tensors[name][0, 0] = math.nan
    _rewrite_tensors(skin, tensors)
    with pytest.raises(SkinError, match=rf"{TENSORS}: tensor {name} holds 1 NaN/inf value\(s\)"):
        load_skin(skin)
    code, out = run("eval", "--skin", skin, "--data-dir", data_dir)
    assert code == 2 and "NaN/inf" in out and "Traceback" not in out, out


# --- masks --------------------------------------------------------------------------------------------------

@pytest.fixture
def masked(tiny_dir, data_dir, tmp_path, one_thread):
    """A masked LN skin: bias masks on every norm, a quarter of the elements each."""
    from lntune.model import load_model

    base = tiny_dir("bert")
    lm = load_model(str(base))
    g = torch.Generator().manual_seed(0)
    masks = {s.name + ".bias": torch.rand(32, generator=g) < 0.25 for s in lm.norms}
    save_file(masks, tmp_path / "mask.safetensors")
    opts = {"terms": "bias", "mask": str(tmp_path / "mask.safetensors")}
    train_task("sst2", str(base), "ln", opts, FAST, tmp_path / "skin", data_dir, 32, 32)
    load_skin(tmp_path / "skin")  # loads as saved
    return tmp_path / "skin"


def _first_mask(tensors):
    return next(k for k in sorted(tensors) if k.startswith("mask:"))


def test_a_mask_of_the_wrong_shape_is_refused(masked):
    tensors = load_file(str(masked / TENSORS))
    key = _first_mask(tensors)
    mask = tensors[key]
    tensors[key] = torch.cat([mask, torch.zeros(8, dtype=torch.bool)])  # same true count, shape (40,)
    _rewrite_tensors(masked, tensors)
    with pytest.raises(SkinError, match=rf"mask {key} has shape \(40,\), the parameter has \(32,\)"):
        load_skin(masked)
    tensors[key] = mask.reshape(4, 8)
    _rewrite_tensors(masked, tensors)
    with pytest.raises(SkinError, match=r"has shape \(4, 8\), the parameter has \(32,\)"):
        load_skin(masked)


def test_a_mask_that_is_not_bool_is_refused(masked):
    tensors = load_file(str(masked / TENSORS))
    key = _first_mask(tensors)
    tensors[key] = tensors[key].float()
    _rewrite_tensors(masked, tensors)
    with pytest.raises(SkinError, match=rf"mask {key} is float32; a mask must be bool"):
        load_skin(masked)


def test_masked_values_must_match_the_masks_count(masked):
    tensors = load_file(str(masked / TENSORS))
    key = _first_mask(tensors)
    name = key[len("mask:"):]
    tensors[name] = torch.cat([tensors[name], torch.zeros(1)])
    _rewrite_tensors(masked, tensors)
    with pytest.raises(SkinError, match=rf"{name} holds \({tensors[name].numel()},\) values, but its mask selects "
                                        rf"{tensors[name].numel() - 1}"):
        load_skin(masked)


# --- files a skin names -------------------------------------------------------------------------------------

@pytest.fixture
def local_skin(tiny_dir, tmp_path, one_thread, monkeypatch):
    """A skin trained on local: files given by relative paths from tmp_path/work."""
    work = tmp_path / "work"
    (work / "my").mkdir(parents=True)
    rows = ["text,label"] + [f"{'fine' if i % 2 else 'awful'} film {i},{'good' if i % 2 else 'bad'}"
                             for i in range(24)]
    (work / "my" / "train.csv").write_text("\n".join(rows) + "\n")
    (work / "my" / "dev.csv").write_text("\n".join(rows[:13]) + "\n")
    monkeypatch.chdir(work)
    task = "local:train=my/train.csv,dev=my/dev.csv,text=text,label=label"
    rec = train_task(task, str(tiny_dir("bert")), "ln", {}, FAST, tmp_path / "skin", None, None, None)
    return tmp_path / "skin", rec, work


def _secret_file(tmp_path):
    path = tmp_path / "private" / "secrets.csv"
    path.parent.mkdir()
    path.write_text(f"{SECRET},password\nroot,{SECRET}-2\n")
    return path


def test_a_crafted_task_name_does_not_print_the_file_it_names(local_skin, tmp_path):
    """Before: the missing-column error showed the header row (here the secret) of any file a skin named."""
    skin, _, _ = local_skin
    secret = _secret_file(tmp_path)
    meta = _meta(skin)
    meta["task"]["name"] = f"local:train={secret},dev={secret},text=x,label=y"
    _write(skin, meta)
    code, out = run("eval", "--skin", skin)
    assert code == 2, out
    assert SECRET not in out and "password" not in out, out
    assert str(secret) in out and "the skin named the files, not you, so which is not said" in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize("spec", [
    "local:train={f},dev={f},text={secret},label=password",  # columns there: the label check reads values
    "local:train={t},dev={f},text={secret},label=password",  # "label '<a cell>' is not among the training labels"
    "local:train={f},dev={f},text=5,label=7,header=none",  # no column 5, 7: counts, not cells
    "conll:train={f},dev={f}",  # "expected token<TAB>tag, got <the line>"
])
def test_no_error_about_a_skin_named_file_quotes_it(local_skin, tmp_path, spec):
    skin, _, _ = local_skin
    secret = _secret_file(tmp_path)
    meta = _meta(skin)
    benign = tmp_path / "benign.csv"  # a training file with the skin's two labels
    benign.write_text(f"{SECRET},password\nx,bad\ny,good\n")
    meta["task"]["name"] = spec.format(f=secret, t=benign, secret=SECRET)
    _write(skin, meta)
    with pytest.raises(SkinError) as e:
        evaluate_skin(skin)
    message = str(e.value).replace(meta["task"]["name"], "<spec>")  # the spec itself is the skin's words
    assert f"{SECRET}-2" not in message and "root" not in message.replace(str(tmp_path), ""), message
    assert str(skin / SKIN_JSON) in message and str(secret) in message and "\n" not in message, message


def test_a_skin_named_path_reads_the_same_whether_it_exists_or_not(local_skin, tmp_path):
    """A crafted skin cannot probe the file system: a missing file, a folder and a file that is no task file
    (here the secret) give one message, the path aside."""
    skin, _, _ = local_skin
    secret = _secret_file(tmp_path)
    meta = _meta(skin)
    messages = []
    for path in (secret, tmp_path / "nothing-here.csv", tmp_path / "private"):
        meta["task"]["name"] = f"local:train={path},dev={path},text=text,label=label"
        _write(skin, meta)
        code, out = run("eval", "--skin", skin)
        assert code == 2, out
        messages.append(out.replace(str(path), "<path>"))
    assert messages[0] == messages[1] == messages[2], messages


def test_relative_task_paths_resolve_against_the_skins_data_root(local_skin, tmp_path, monkeypatch):
    skin, rec, work = local_skin
    meta = _meta(skin)
    assert meta["data_root"] == str(work.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative paths do not exist from here
    assert evaluate_skin(skin)["loss"] == rec.metrics["loss"]
    code, out = run("eval", "--skin", skin)
    assert code == 0 and "(same as saved)" in out, out


def test_eval_task_overrides_the_skins_task(local_skin, tmp_path, monkeypatch):
    skin, rec, work = local_skin
    moved = tmp_path / "moved"
    (work / "my").rename(moved)  # the skin's files are gone; the user names them now
    code, out = run("eval", "--skin", skin)
    assert code == 2 and "cannot be read from " in out and "work/my/train.csv" in out, out
    spec = f"local:train={moved}/train.csv,dev={moved}/dev.csv,text=text,label=label"
    code, out = run("eval", "--skin", skin, "--task", spec)
    assert code == 0 and "(on --task" in out, out
    assert float(out.split("loss: ")[1].split()[0]) == pytest.approx(rec.metrics["loss"], abs=1e-6)
    # a task the head cannot read is refused, with the user's own labels shown
    (moved / "three.csv").write_text("text,label\na,x\nb,y\nc,z\n")
    code, out = run("eval", "--skin", skin, "--task", f"local:train={moved}/three.csv,dev={moved}/dev.csv,text=text")
    assert code == 2 and "trained on labels ['bad', 'good']" in out and "['x', 'y', 'z']" in out, out


def test_a_skin_named_base_model_folder_that_is_not_a_model(trained, tmp_path):
    base, skin = trained
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text(f'{{"model_type": "{SECRET}"')  # broken JSON with a secret
    meta = _meta(skin)
    meta["base"]["model"] = str(folder)
    _write(skin, meta)
    with pytest.raises(SkinError) as e:
        load_skin(skin)
    assert SECRET not in str(e.value) and str(folder) in str(e.value) and "--model" in str(e.value)
    meta["base"]["model"] = str(_secret_file(tmp_path))
    _write(skin, meta)
    with pytest.raises(SkinError, match="not a model folder"):
        load_skin(skin)
    load_skin(skin, model=str(base))  # the user names the base now


def test_a_tensor_stored_as_integers_is_refused(trained):
    """An int copy of a gain loads silently and changes every prediction (issue 24, 5)."""
    from safetensors.torch import load_file

    base, skin = trained
    tensors = load_file(str(skin / TENSORS))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].round().to(torch.int64)
    _rewrite_tensors(skin, tensors)
    with pytest.raises(SkinError, match=f"tensor {name} is int64"):
        load_skin(skin)


def test_a_skin_with_a_label_twice_is_refused(trained):
    base, skin = trained
    meta = _meta(skin)
    meta["task"]["labels"] = ["positive", "positive"]
    _write(skin, meta)
    with pytest.raises(SkinError, match="'positive' appears more than once"):
        load_skin(skin)


def test_generated_rebuild_options_load_or_are_one_skin_error(trained_once, tmp_path):
    """A skin's `rebuild` options go through the methods' option rules: any value loads (when valid for the
    model) or is a SkinError naming skin.json, never a traceback (before: {"layers": 3} crashed eval)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base, source = trained_once
    skin = tmp_path / "skin"
    shutil.copytree(source, skin)
    meta = _meta(skin)
    values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                       st.text(max_size=8), st.sampled_from(["all", "ffn", "gain", "0-1", "top-half"]))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rebuild=st.dictionaries(st.sampled_from(["terms", "modules", "layers", "mask", "r", "size"]), values,
                                   max_size=3))
    def check(rebuild):
        _write(skin, {**meta, "rebuild": rebuild})
        try:
            load_skin(skin, str(base))
        except SkinError as e:
            assert str(skin / SKIN_JSON) in str(e) or str(skin / TENSORS) in str(e), str(e)

    check()
