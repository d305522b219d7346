"""Command-line overrides that name no config key, caught before Hydra runs, with the key that was meant.

Hydra answers ``model.use_geometri=false`` with "To append to your config use +model.use_geometri=false",
and that override fails only once the model is built (a TypeError, seconds or minutes later). Here both
are refused at once: a key that is not in the composed config, and a ``+key`` that the config node's
``_target_`` does not take as an argument (``+model.use_geometri``: no such argument of ``Reg2RG``),
each with the closest existing key (difflib).

    problems = unknown_keys(sys.argv[1:], CONFIG_DIR, "train")   # [] when every key exists
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PLAIN_FLAGS = {"-m", "--multirun"}  # any other flag (-cn, -cp, --cfg ...) leaves the check to Hydra
LISTED_KEYS = 12  # keys listed when no close match is found


def unknown_keys(argv: list[str], config_dir: str | Path, config_name: str) -> list[str]:
    """One message per override of ``argv`` whose key does not exist, each naming the closest key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    if any(argument.startswith("-") and argument not in PLAIN_FLAGS for argument in argv):
        return []
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if a not in PLAIN_FLAGS])
    except HydraException:  # a syntax error: Hydra says where
        return []
    overrides = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    config_dir = Path(config_dir).absolute()
    groups = [o for o in overrides if (config_dir / o.key_or_group).is_dir()]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            composed = compose(config_name, overrides=[_first_choice(o) for o in groups])
    except HydraException:  # an unknown group option: Hydra lists the options
        return []
    config = OmegaConf.to_container(composed, resolve=False)
    added: list[str] = []  # keys that earlier +key overrides create
    problems = []
    for override in overrides:
        if override in groups or override.is_delete():
            continue
        key = override.key_or_group
        problem = _problem(config, key, override.input_line, override.is_add() or override.is_force_add(), added)
        if problem:
            problems.append(problem)
        elif override.is_add() or override.is_force_add():
            added.append(key)
    return problems


def _first_choice(override) -> str:
    """A group override as a compose() override, a sweep (``experiment=a,b``) reduced to its first option."""
    if not override.is_sweep_override():
        return override.input_line
    return f"{override.get_key_element()}={next(override.sweep_string_iterator())}"  # the key with its +, ++


def _problem(config: dict, key: str, line: str, adds: bool, added: list[str]) -> str | None:
    """What is wrong with the override ``line`` of ``key``; None when nothing is."""
    node, path, rest = _deepest(config, key.split("."))
    if not rest or any(key == known or key.startswith(f"{known}.") for known in added):
        return None  # the key exists (an existing +key is Hydra's error to report) or an earlier +key makes it
    if not isinstance(node, dict):
        return None  # inside a value (an interpolation, a list): nothing to check against
    target = node["_target_"] if isinstance(node.get("_target_"), str) else None
    arguments = _arguments(target) if adds and target is not None else None
    if adds and (arguments is None or rest[0] in arguments):
        return None  # +key under a node without a known signature, or an argument of its target
    where = ".".join(path) or "the config"
    reason = f"{where} ({target}) takes no argument '{rest[0]}'" if adds else f"'{key}' is not a key of the config"
    if len(rest) > 1:  # a misspelled node on the way: the keys as deep as this one
        candidates = {".".join(names): "" for names in _keys(config) if len(names) == len(path) + len(rest)}
        match = _closest(key, candidates)
    else:  # a misspelled last key: its siblings, then the arguments of their node's _target_
        candidates = {".".join([*path, name]): "" for name in node if not name.startswith("_")}
        match = _closest(key, candidates, rest[0])
        if target is not None and (adds or match is None):
            arguments = arguments if arguments is not None else _arguments(target) or set()
            candidates = {".".join([*path, name]): "+" for name in arguments} | candidates  # "+": not in the config
            match = _closest(key, candidates, rest[0])
    if match is not None:
        value = line.split("=", 1)[1] if "=" in line else "..."
        return f"override '{line}': {reason}; did you mean {candidates[match]}{match}={value} ?"
    names = sorted(name for name in node if not name.startswith("_")) + sorted(set(arguments or ()) - set(node))
    listed = ", ".join(names[:LISTED_KEYS]) + (", ..." if len(names) > LISTED_KEYS else "")
    return f"override '{line}': {reason}; the keys under {where}: {listed}"


def _closest(key: str, candidates: dict[str, str], name: str | None = None) -> str | None:
    """The candidate key closest to ``key``; with ``name``, the one whose last part is closest to it."""
    if name is None:
        matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
        return matches[0] if matches else None
    by_name = {candidate.rsplit(".", 1)[-1]: candidate for candidate in candidates}
    matches = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
    return by_name[matches[0]] if matches else None


def _deepest(config: dict, parts: list[str]) -> tuple[Any, list[str], list[str]]:
    """The deepest node of ``config`` on the path ``parts``, its path, and the parts below it that do not exist."""
    node: Any = config
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return node, parts[:depth], parts[depth:]
    return node, parts, []


def _keys(config: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a plain config (nested dicts), inner nodes included."""
    if isinstance(config, dict):
        for name, value in config.items():
            if not str(name).startswith("_"):
                yield (*path, str(name))
                yield from _keys(value, (*path, str(name)))


def _arguments(target: str) -> set[str] | None:
    """The keyword arguments of a ``_target_`` (None: it cannot be imported, or it takes ``**kwargs``)."""
    from hydra.utils import get_object

    try:
        parameters = inspect.signature(get_object(target)).parameters.values()
    except Exception:  # noqa: BLE001 - a target that does not import is reported when it is instantiated
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}
