"""Plugins: a method and a head registered by an installed package's entry point, or by a module named in
$LNTUNE_PLUGINS, reach the CLI (its help and lists), the Python API and sweep workers; a broken plugin is one
clear error."""
import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lntune.plugins as plugins
from lntune.heads import HEADS
from lntune.method import METHODS
from lntune.plugins import PluginError, load_plugins

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    from lntune.heads import HEADS
    from lntune.heads.classification import Classification
    from lntune.method import METHODS, Method, Tuned


    @dataclass
    class PlugToyConfig:
        layers: int = 1  # how many blocks' FFN norms train


    class PlugToy(Method):
        name = "plugtoy"
        Config = PlugToyConfig
        lr_family = "ln"

        def apply(self, lm):
            params = dict(lm.model.named_parameters())
            keep = [n for n in params if n.endswith("output.LayerNorm.weight") and ".attention." not in n]
            return [Tuned(n, params[n]) for n in keep[: self.config.layers]]


    class PlugHead(Classification):
        name = "plughead"


    CALLS = []


    def register():
        CALLS.append(1)
        METHODS[PlugToy.name] = PlugToy
        HEADS[PlugHead.name] = PlugHead()


    if __name__ == "{module}":  # imported as a module plugin: registering is the import itself
        register()
''')


def site(tmp_path: Path, module: str = "toyplug", value: str | None = None, body: str | None = None) -> Path:
    """A folder on the path holding `module` and an installed distribution whose entry point names it (a module
    plugin registers when imported; one whose entry point names its function only when that is called)."""
    root = tmp_path / "site"
    root.mkdir(exist_ok=True)
    (root / f"{module}.py").write_text(body if body is not None else PLUGIN.replace("{module}", "" if ":" in (value or "") else module))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    if value is not None:
        (info / "entry_points.txt").write_text(f"[lntune.plugins]\ntoy = {value}\n")
    return root


@pytest.fixture
def fresh(monkeypatch):
    """No plugin loaded yet, and whatever a test registers is gone after it."""
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.delenv(plugins.ENV, raising=False)
    before, heads = dict(METHODS), dict(HEADS)
    yield
    for name in set(METHODS) - set(before):
        del METHODS[name]
    for name in set(HEADS) - set(heads):
        del HEADS[name]
    for name in [m for m in sys.modules if m.startswith(("toyplug", "broken", "loose"))]:
        del sys.modules[name]


def test_an_entry_point_module_registers_once(tmp_path, monkeypatch, fresh):
    monkeypatch.syspath_prepend(str(site(tmp_path, value="toyplug")))
    assert load_plugins() == ["toy"] and "plugtoy" in METHODS and "plughead" in HEADS
    assert load_plugins() == []  # loaded once per process
    assert "toyplug" in plugins.loaded()["toy=toyplug"]


def test_an_entry_point_may_name_a_function(tmp_path, monkeypatch, fresh):
    monkeypatch.syspath_prepend(str(site(tmp_path, module="toyplug_fn", value="toyplug_fn:register")))
    assert load_plugins() == ["toy"] and "plugtoy" in METHODS
    assert sys.modules["toyplug_fn"].CALLS == [1]


def test_the_environment_names_a_module(tmp_path, monkeypatch, fresh):
    monkeypatch.syspath_prepend(str(site(tmp_path, module="loose")))
    monkeypatch.setenv(plugins.ENV, " loose , ")
    assert load_plugins() == ["loose"] and "plugtoy" in METHODS


@pytest.mark.parametrize("body, words", [
    ("raise ImportError('needs foo>=2')", "ImportError: needs foo>=2; fix or uninstall broken"),
    ("def f(:\n", "SyntaxError"),
])
def test_a_broken_entry_point_names_its_package(tmp_path, monkeypatch, fresh, body, words):
    monkeypatch.syspath_prepend(str(site(tmp_path, module="broken", value="broken", body=body)))
    with pytest.raises(PluginError) as e:
        load_plugins()
    assert "entry point toy = broken of broken (group lntune.plugins)" in str(e.value) and words in str(e.value)


def test_a_missing_environment_module_says_how_to_fix_it(monkeypatch, fresh):
    monkeypatch.setenv(plugins.ENV, "nowhere_to_be_found")
    with pytest.raises(PluginError, match=r"\$LNTUNE_PLUGINS names 'nowhere_to_be_found': ModuleNotFoundError.*"
                                          r"put its folder on PYTHONPATH or take it out of LNTUNE_PLUGINS"):
        load_plugins()


def test_a_sweep_worker_loads_plugins_before_its_run(tmp_path, monkeypatch, fresh, tiny_dir, data_dir):
    """A worker process starts without the driver's registrations: execute() loads the plugins itself."""
    from lntune.sweep.config import parse_config
    from lntune.sweep.grid import expand
    from lntune.sweep.run import execute
    from tests.sweep.conftest import tiny_sweep

    monkeypatch.syspath_prepend(str(site(tmp_path, value="toyplug")))
    load_plugins()  # the driver: plans the sweep with the plugin's method
    cfg = parse_config(copy.deepcopy(tiny_sweep(str(tiny_dir("bert")), data_dir, efficiency=None, lr_budget=1,
                                                runs=[{"method": "plugtoy", "tasks": ["sst2"], "seeds": [1]}])),
                       tmp_path / "s.yaml")
    spec = expand(cfg, str(data_dir))[0].spec
    del METHODS["plugtoy"], sys.modules["toyplug"]  # the worker: a process that has not seen it
    monkeypatch.setattr(plugins, "_LOADED", {})
    out = execute({"kind": "run", "spec": spec, "data_dir": str(data_dir), "threads": 1, "mask": None})
    assert out["ok"], out.get("traceback")
    assert out["counts"]["tuned"] == 32  # one FFN LayerNorm gain of the 32-wide tiny BERT


def _cli(args: list[str], root: Path, **env) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "lntune.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path, **env})


def test_the_command_line_lists_a_plugin_and_says_when_one_is_broken(tmp_path):
    root = site(tmp_path, value="toyplug")
    listed = _cli(["methods"], root)
    assert listed.returncode == 0 and "plugtoy\tlayers=1" in listed.stdout, listed.stderr
    helped = _cli(["norms", "--help"], root, COLUMNS="300")  # help built at import: the plugin's head is in it
    assert helped.returncode == 0 and "plughead" in helped.stdout, helped.stdout
    broken = _cli(["methods"], root, LNTUNE_PLUGINS="nowhere_to_be_found")
    assert broken.returncode == 2 and broken.stderr.startswith("error: plugin failed to load: $LNTUNE_PLUGINS")
