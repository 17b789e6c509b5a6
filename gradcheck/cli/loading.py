"""Loading a user model from ``MODULE:FACTORY``, optionally configured with keyword arguments.

A factory may accept any subset of the configuration keywords ``x_dim, hidden, steps, seed, variant, loss`` (or
``**kwargs`` for all). ``gradcheck run --model M:F`` calls ``F()`` unless size flags are given on the command
line: then it calls ``F(x_dim=..., ...)`` with exactly the flags given (``--seed`` only when F accepts it, since
it is also the report's seed). ``gradcheck fuzz`` varies the keywords the factory accepts.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

from ..errors import ModelError, UsageError

CONFIG_KEYS = ("x_dim", "hidden", "steps", "seed", "variant", "loss", "dtype")


def flag(key: str) -> str:
    """The ``gradcheck run`` flag of a configuration keyword: ``x_dim`` -> ``--x-dim``."""
    return "--" + key.replace("_", "-")


def accepted_keys(factory: Callable) -> tuple[str, ...]:
    """The configuration keywords ``factory`` accepts (all of :data:`CONFIG_KEYS` when it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return ()
    ps = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return CONFIG_KEYS
    names = {
        p.name
        for p in ps
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return tuple(k for k in CONFIG_KEYS if k in names)


def load_factory(spec: str) -> Callable:
    """Import MODULE (the current directory on the path) and return FACTORY from ``MODULE:FACTORY``."""
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise UsageError(f"--model: expected MODULE:FACTORY, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--model: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise UsageError(f"--model: module {module_name!r} has no {factory_name!r}")
    if not callable(factory):
        raise UsageError(f"--model: {module_name}:{factory_name} is not callable")
    return factory


def build_model(factory: Callable, config: dict, *, name: str = "factory", sources: dict | None = None):
    """Call ``factory(**config)``; the factory must accept every key given. Its own exceptions -> ModelError.

    ``sources``: where each setting came from (``{"hidden": "GRADCHECK_HIDDEN"}``), named in the usage error when
    the factory does not take it.
    """
    accepted = accepted_keys(factory)
    refused = [k for k in config if k not in accepted]
    if refused:
        sources = sources or {}
        said = ", ".join(f"{k} (from {sources[k]})" if k in sources else k for k in refused)
        raise UsageError(
            f"{name} does not accept {said} (it accepts {', '.join(accepted) or 'none of'} "
            f"{'' if accepted else ', '.join(CONFIG_KEYS)}); drop those settings or add the keyword arguments"
        )
    try:
        return factory(**config)
    except Exception as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        raise ModelError(f"{name}({args})", exc) from exc


def load_model_with_config(spec: str, **config):
    """``--model MODULE:FACTORY`` with configuration keywords: ``FACTORY(**config)``.

    For ``gradcheck run``: forward the reference-size flags the user gave (``--x-dim``, ``--hidden``, ``--steps``,
    ``--seed``, ``--variant``, ``--loss``) as keyword arguments; with none given this is ``FACTORY()``, as before.
    A flag the factory does not accept is a usage error (:class:`UsageError`: exit 2) naming it;
    the factory's own exceptions become :class:`ModelError` (exit 3).
    """
    unknown = [k for k in config if k not in CONFIG_KEYS]
    if unknown:
        raise UsageError(f"unknown configuration keys {unknown}; known: {list(CONFIG_KEYS)}")
    return build_model(load_factory(spec), config, name=spec)
