"""Workload registry: name -> Workload class. The harness only ever looks workloads up here.

Two sources, one table:
- the built-in workloads below (BUILTIN);
- workloads other packages register under the entry-point group `bench.workloads`, one entry per
  workload, `name = "module:Class"` (docs/extending.md shows the pyproject.toml lines), so that a
  third party adds a workload without forking bench.

`REGISTRY` is a read-only mapping name -> "module:Class" over both. Installed entry points are
found on first use and once per process (reading package metadata only, which is cheap); a
workload's module is imported only when that workload is asked for, by `workload_class`, so that
`bench --help` imports no torch model and a broken third-party workload costs nothing until used.

A broken entry point (its module does not import, it names something that is not a concrete
Workload subclass, its name is a built-in's or another package's, or is not a usable name) is a
one-line BenchError (`error: ...`, exit 2) when its name is used, and never affects any other
workload. A name registered by two sources is refused rather than resolved either way: running
the built-in when the user installed a package to replace it, or the reverse, would measure
something other than what was asked for without a word.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from bench.errors import BenchError, first_line, one_of

if TYPE_CHECKING:
    from workloads.base import Workload

ENTRY_POINT_GROUP = "bench.workloads"

# name -> "module:Class"; imported lazily so that `bench --help` does not import torch models.
BUILTIN: dict[str, str] = {
    "maintenance": "workloads.maintenance:Maintenance",
    "traffic": "workloads.traffic:Traffic",
    "sentiment": "workloads.sentiment:Sentiment",
}

# Workload names become cell ids, file names and matrix keys: letters, digits, '_', '-' and '.'.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class WorkloadRegistry(Mapping[str, str]):
    """name -> "module:Class" for the built-in workloads and every `bench.workloads` entry point.

    Entry points are discovered on first access, once; `problem(name)` says why a registered
    name cannot be used (None when it can)."""

    def __init__(self, builtin: Mapping[str, str], group: str = ENTRY_POINT_GROUP) -> None:
        self._builtin = dict(builtin)
        self._group = group
        self._lock = threading.Lock()
        self._table: dict[str, str] | None = None
        self._problems: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._classes: dict[str, type] = {}

    # -- Mapping -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> str:
        return self._entries()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"WorkloadRegistry({self._entries()!r})"

    # -- lookups -------------------------------------------------------------------------------

    def problem(self, name: str) -> str | None:
        """Why the registered `name` cannot be used, found without importing anything, or None."""
        self._entries()
        return self._problems.get(name)

    def source(self, name: str) -> str:
        """Where `name` comes from, for messages: 'built-in', or the entry point and its package."""
        self._entries()
        return self._sources.get(name, "built-in")

    def load_class(self, name: str) -> type[Workload]:
        """The Workload class registered as `name`, imported and checked once; BenchError if unknown
        or broken (the message names the entry point and its package)."""
        entries = self._entries()
        if name not in entries:
            raise one_of("workload", name, list(entries))
        if name in self._problems:
            raise BenchError(f"workload {name!r}: {self._problems[name]}")
        if name not in self._classes:
            cls = self._import(name, entries[name])
            with self._lock:
                self._classes.setdefault(name, cls)
        return self._classes[name]

    # -- discovery -----------------------------------------------------------------------------

    def _entries(self) -> dict[str, str]:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._discover()
        return self._table

    def _discover(self) -> dict[str, str]:
        table = dict(self._builtin)
        found: dict[str, list[tuple[str, str]]] = {}  # name -> [(value, source)], one per distinct value
        for entry, dist in _entry_points(self._group):
            source = f"entry point '{entry.name} = {entry.value}' of package {dist}"
            values = found.setdefault(entry.name, [])
            if all(value != entry.value for value, _ in values):
                values.append((entry.value, source))
        for name, values in found.items():
            value, source = values[0]
            if name in self._builtin:
                if any(v != self._builtin[name] for v, _ in values):  # bench's own entry, if any, is no clash
                    other = next(s for v, s in values if v != self._builtin[name])
                    self._problems[name] = (f"{other} registers the name of a built-in workload; bench refuses to "
                                            f"guess which one to run: rename the entry point")
                continue
            table[name] = value
            self._sources[name] = source
            if len(values) > 1:
                self._problems[name] = (f"registered twice, by {values[0][1]} and by {values[1][1]}; bench refuses "
                                        "to guess which one to run: rename one of them")
            elif not NAME.match(name):
                self._problems[name] = (f"{source}: a workload name is letters, digits, '_', '-' and '.', starting "
                                        "with a letter or digit")
        return table

    def _import(self, name: str, value: str) -> type:
        from workloads.base import Workload

        source = self.source(name)
        module, _, attribute = value.partition(":")
        try:
            obj = importlib.import_module(module.strip())
            for part in filter(None, attribute.strip().split(".")):
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - whatever a third-party module raises, it is that workload's fault
            raise BenchError(f"workload {name!r}: {source} cannot be imported ({type(exc).__name__}: "
                             f"{first_line(exc)})") from None
        if not (isinstance(obj, type) and issubclass(obj, Workload)):
            raise BenchError(f"workload {name!r}: {source} names {_describe(obj)}, not a subclass of "
                             "workloads.base.Workload")
        missing = [attr for attr in ("name", "variants", "target_metric") if not hasattr(obj, attr)]
        if missing:
            raise BenchError(f"workload {name!r}: {source}: class {obj.__name__} does not set {', '.join(missing)}")
        if obj.__abstractmethods__:
            raise BenchError(f"workload {name!r}: {source}: class {obj.__name__} does not implement "
                             f"{', '.join(sorted(obj.__abstractmethods__))}")
        if obj.name != name:
            # Results record the class's name; one workload must not be filed under two names.
            raise BenchError(f"workload {name!r}: {source}: class {obj.__name__} calls itself {obj.name!r}; "
                             "the entry point's name and the class's `name` must be the same")
        if (not isinstance(obj.variants, tuple) or not obj.variants
                or not all(isinstance(v, str) and v for v in obj.variants)):
            raise BenchError(f"workload {name!r}: {source}: class {obj.__name__}.variants must be a non-empty tuple "
                             f"of names, got {obj.variants!r}")
        return obj


def _entry_points(group: str) -> Iterator[tuple[importlib.metadata.EntryPoint, str]]:
    """(entry point, package name) for each installed distribution's entries in `group`.

    Distribution by distribution, so that one package with unreadable metadata costs only its own
    entries; a package found twice on the path (installed, and again on PYTHONPATH) counts once."""
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        try:
            dist_name = dist.metadata["Name"] or "?"
            key = re.sub(r"[-_.]+", "-", dist_name).lower()
            if key in seen:
                continue
            seen.add(key)
            entries = [entry for entry in dist.entry_points if entry.group == group]
        except Exception:  # noqa: BLE001, S112 - a package's damaged metadata must not break the others
            continue
        for entry in entries:
            yield entry, dist_name


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    return f"{type(obj).__name__} {getattr(obj, '__name__', repr(obj)[:60])}"


REGISTRY: WorkloadRegistry = WorkloadRegistry(BUILTIN)
"""Every workload bench can run, by name -> "module:Class" (built-in and entry points)."""


def workload_class(name: str) -> type[Workload]:
    """The Workload class registered as `name`; BenchError (one line, exit 2) if unknown or broken."""
    return REGISTRY.load_class(name)


def make_workload(name: str, variant: str | None = None, params: dict | None = None) -> Workload:
    """An instance of workload `name` with this variant (None: its first) and params overrides."""
    return workload_class(name)(variant=variant, params=params)
