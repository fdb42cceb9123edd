"""The one registry of workloads and optimizers: the built-in ones and those that installed
packages register through entry points (``robustness.workloads``, ``robustness.optimizers``).

- Names are known without importing anything (the entry points' metadata): ``workload_names``,
  ``optimizer_names``. ``get_workload`` / ``optimizer_factory`` import a plugin the first time
  it is asked for, once per process; one that fails is ``broken``: listed with its error by
  ``workload_entries`` / ``optimizer_entries`` (discovery, ``GET /workloads``) and a
  ``PluginError`` for a spec that names it, never a crash of the process.
- ``check_spec`` is the check at the edge (the service's POST, ``robustness run``): the
  spec's ``dataset`` is a workload, its ``model`` one of that workload's models, each
  optimizer known and each hyperparameter the spec sets taken by that optimizer. Errors name
  the installed choices.
- Optimizers (``studies.workloads.optimizers``): the project's four (``radam.factory``), every
  ``torch.optim`` class by its lower-case name (torch's RAdam as ``torch_radam``), plugins.

Only the built-ins are imported with this module; torch is imported when a workload is
loaded or an optimizer outside the project's four is looked up.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from studies.errors import DatasetNotFoundError, PluginError, SpecError, UnknownNameError
from studies.workloads.builtin import BUILTIN_WORKLOADS
from studies.workloads.interface import DataStatus, Workload

if TYPE_CHECKING:
    from studies.spec import StudySpec

log = logging.getLogger(__name__)

WORKLOAD_GROUP = "robustness.workloads"
OPTIMIZER_GROUP = "robustness.optimizers"
BUILTIN = "builtin"

Kind = Literal["workload", "optimizer"]


@dataclass(frozen=True)
class Entry:
    """One registered name: where it comes from (``plugin``: ``builtin`` or the distribution
    that registers it, with its version), its entry point (``target``, ``module:attr``) and,
    once loaded, its error when it is broken."""

    name: str
    kind: Kind
    plugin: str
    target: str
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


_lock = threading.RLock()
_entry_points: dict[Kind, dict[str, metadata.EntryPoint]] = {}
_loaded: dict[tuple[Kind, str], Any] = {}
_errors: dict[tuple[Kind, str], str] = {}


def refresh() -> None:
    """Forget what was discovered and loaded (a package was installed or removed)."""
    with _lock:
        _entry_points.clear()
        _loaded.clear()
        _errors.clear()


def _plugins(kind: Kind) -> dict[str, metadata.EntryPoint]:
    with _lock:
        if kind not in _entry_points:
            group = WORKLOAD_GROUP if kind == "workload" else OPTIMIZER_GROUP
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=group):
                if ep.name in found:
                    log.warning("%s %r is registered twice; using %s", kind, ep.name, ep.value)
                found.setdefault(ep.name, ep)
            _entry_points[kind] = found
        return _entry_points[kind]


def _plugin_label(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def _load(kind: Kind, name: str, ep: metadata.EntryPoint) -> Any:
    """A plugin's object, imported once; a failure is remembered and raised as PluginError."""
    key = (kind, name)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key in _errors:
            raise PluginError(_errors[key], field="dataset" if kind == "workload" else "optimizers")
        try:
            obj = ep.load()
            if kind == "workload":
                obj = _as_workload(obj, name)
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            _errors[key] = f"the {kind} plugin {name!r} ({ep.value}) is broken: {detail}"
            log.error("%s\n%s", _errors[key], traceback.format_exc())
            raise PluginError(
                _errors[key], field="dataset" if kind == "workload" else "optimizers"
            ) from exc
        _loaded[key] = obj
        return obj


def _as_workload(obj: Any, name: str) -> Workload:
    """An entry point's object as a Workload: an instance, a subclass, or a factory of one."""
    if (isinstance(obj, type) and issubclass(obj, Workload)) or (
        not isinstance(obj, Workload) and callable(obj)
    ):
        obj = obj()
    if not isinstance(obj, Workload):
        raise TypeError(f"{obj!r} is not a studies.workloads.interface.Workload")
    obj.check()
    if obj.name != name:
        raise ValueError(f"the entry point is named {name!r} but the workload {obj.name!r}")
    return obj


# ---- workloads ---------------------------------------------------------------------------


def workload_names() -> tuple[str, ...]:
    """Every workload name, built-ins first; nothing is imported."""
    builtin = tuple(w.name for w in BUILTIN_WORKLOADS)
    return builtin + tuple(n for n in sorted(_plugins("workload")) if n not in builtin)


def get_workload(name: str) -> Workload:
    """The workload ``name``: ``UnknownNameError`` listing the installed ones, or
    ``PluginError`` with the error of a plugin that is broken."""
    for workload in BUILTIN_WORKLOADS:
        if workload.name == name:
            return workload
    ep = _plugins("workload").get(name)
    if ep is None:
        raise UnknownNameError(
            f"unknown workload (dataset) {name!r}", field="dataset", choices=workload_names()
        )
    result: Workload = _load("workload", name, ep)
    return result


def workload_entries() -> list[tuple[Entry, Workload | None]]:
    """Every workload with where it comes from; each plugin is imported (once) to say
    whether it works: a broken one comes with its error and no workload."""
    out: list[tuple[Entry, Workload | None]] = [
        (Entry(w.name, "workload", BUILTIN, f"studies.workloads.builtin:{w.name}"), w)
        for w in BUILTIN_WORKLOADS
    ]
    builtin = {w.name for w in BUILTIN_WORKLOADS}
    for name, ep in sorted(_plugins("workload").items()):
        if name in builtin:
            continue
        entry = Entry(name, "workload", _plugin_label(ep), ep.value)
        try:
            out.append((entry, _load("workload", name, ep)))
        except PluginError as exc:
            out.append((Entry(name, "workload", entry.plugin, ep.value, str(exc)), None))
    return out


def check_workload(dataset: str, model: str) -> Workload:
    """The spec's ``dataset`` as a workload with ``model`` among its models."""
    workload = get_workload(dataset)
    if model not in workload.models:
        raise UnknownNameError(
            f"workload {dataset!r} has no model {model!r}", field="model", choices=workload.models
        )
    return workload


def check_spec(spec: StudySpec) -> Workload:
    """The check where a study enters (the service's POST, ``robustness run``): its workload,
    model, optimizers and their hyperparameters are installed and fit. Returns the workload."""
    from studies.workloads import optimizers

    workload = check_workload(spec.dataset, spec.model)
    given = spec.model_fields_set & set(optimizers.SPEC_HPARAMS)
    for name in spec.optimizers:
        optimizers.check_optimizer(name, given=given)
    if spec.image_size is not None and not workload.images:
        raise SpecError(f"workload {spec.dataset!r} has no images to resize", field="image_size")
    return workload


def admit(spec: StudySpec) -> StudySpec:
    """``check_spec``, then the spec with its workload's metric written in: what the service's
    POST and ``robustness run`` hand on."""
    return spec.with_metric(check_spec(spec).metric)


def data_status(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
    """Where workload ``name``'s data is, on disk only (a workload without a source ships its
    data: always found)."""
    workload = get_workload(name)
    if workload.source is None:
        return DataStatus(True, f"bundled with {name}")
    return workload.source.status(data_dir)


def require_data(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
    """``data_status``, raising ``DatasetNotFoundError`` (its message: how to get it)."""
    status = data_status(name, data_dir=data_dir)
    if not status.found:
        raise DatasetNotFoundError(status.hint or f"{name}: its data was not found")
    return status


def fetch_data(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
    """Make workload ``name``'s data available (its source's fetch)."""
    workload = get_workload(name)
    if workload.source is None:
        return DataStatus(True, f"bundled with {name}")
    return workload.source.fetch(data_dir)
