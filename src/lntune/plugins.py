"""Plugins: code outside lntune that registers its own heads, methods or tasks, loaded by every entry point.

A plugin is a module that registers when imported (`METHODS[MyMethod.name] = MyMethod`, `HEADS[...]`,
`TASKS[...]`), named either by an installed package's entry point in the group `lntune.plugins`:

    # the plugin package's pyproject.toml
    [project.entry-points."lntune.plugins"]
    my_methods = "my_package.lntune_plugin"          # a module; or "my_package:register" (called after import)

or, for a module on the path that is not packaged, in $LNTUNE_PLUGINS (comma-separated module names). The
command line loads them before it builds its help, so a plugin's method shows in `lntune methods`, its head in
the help that lists heads (`lntune norms --help`) and its task in `lntune tasks`; sweep workers load them before each run (a fresh process has not seen the
driver's imports); Python code calls `lntune.load_plugins()` or imports its module itself.
"""
from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from lntune.errors import LntuneError

GROUP = "lntune.plugins"
ENV = "LNTUNE_PLUGINS"
_LOADED: dict[str, str] = {}  # plugin -> where it was named, so a second call imports nothing again


class PluginError(LntuneError):
    """A plugin named by an entry point or $LNTUNE_PLUGINS could not be loaded."""


def load_plugins() -> list[str]:
    """Load every plugin not loaded yet (entry points first, then $LNTUNE_PLUGINS, each in order); the names
    loaded by this call. A plugin that fails to load is a PluginError naming it, where it was named and the fix.

    >>> import lntune
    >>> new = lntune.load_plugins()  # e.g. ['bitfit_no_ln'] with LNTUNE_PLUGINS=bitfit_no_ln
    >>> lntune.load_plugins()  # each plugin loads once per process
    []
    """
    done = []
    for ep in entry_points(group=GROUP):
        package = ep.dist.name if ep.dist else "an installed package"
        where = f"entry point {ep.name} = {ep.value} of {package} (group {GROUP})"
        if _load(f"{ep.name}={ep.value}", where, ep.load, f"fix or uninstall {package}"):
            done.append(ep.name)
    for name in filter(None, (n.strip() for n in os.environ.get(ENV, "").split(","))):
        where = f"${ENV} names {name!r}"
        if _load(name, where, lambda n=name: importlib.import_module(n),
                 f"put its folder on PYTHONPATH or take it out of {ENV}"):
            done.append(name)
    return done


def _load(key: str, where: str, load, fix: str) -> bool:
    if key in _LOADED:
        return False
    try:
        target = load()
        if callable(target):  # an entry point may name a function that registers, rather than a module
            target()
    except Exception as e:  # whatever a third party's import raises; reported with where it was named
        raise PluginError(f"plugin failed to load: {where}: {type(e).__name__}: {e}; {fix}") from e
    _LOADED[key] = where
    return True


def loaded() -> dict[str, str]:
    """The plugins loaded in this process, and where each was named."""
    return dict(_LOADED)
