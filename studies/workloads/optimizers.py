"""Optimizers by name: the project's four, every ``torch.optim`` class, and plugins.

- ``radam``, ``adam``, ``adamw``, ``sgd``: ``radam.factory.make_optimizer`` (the paper's
  conventions: RAdam and AdamW decouple the decay, Adam and SGD add it to the gradient), the
  only kinds ``radam.packed.PackedOptimizer`` packs (``PACKABLE``).
- Any other ``torch.optim`` optimizer by its lower-case class name (``nadam``, ``adamax``,
  ``rmsprop``, ``adagrad``, ``adadelta``, ``asgd``, ``rprop``, ...; torch's own RAdam is
  ``torch_radam``, since ``radam`` is the project's). ``lbfgs`` (it needs a closure) and
  ``sparseadam`` (sparse gradients only) are left out.
- Plugins: an entry point in ``robustness.optimizers`` naming a ``torch.optim.Optimizer``
  subclass, or a function ``(params, *, lr, **hyperparameters) -> Optimizer``.

The spec's hyperparameters (``SPEC_HPARAMS``: weight_decay, momentum, betas, eps) are passed
to every optimizer outside the four whose constructor takes them (so the spec's values,
defaults included, apply wherever they mean something). One that the spec sets explicitly and
the constructor does not take is an error naming it (``check_optimizer``, at the edge), not
silently dropped. Warmups are schedules of the lr (``radam.schedules``) and apply to all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from studies.errors import SpecError, UnknownNameError
from studies.workloads import registry

if TYPE_CHECKING:
    import torch

PROJECT_OPTIMIZERS: tuple[str, ...] = ("radam", "adam", "adamw", "sgd")  # = radam.factory's
PACKABLE: frozenset[str] = frozenset(PROJECT_OPTIMIZERS)  # radam.packed.PackedOptimizer's kinds
SPEC_HPARAMS: tuple[str, ...] = ("weight_decay", "momentum", "betas", "eps")
# what radam.factory passes on to each of the project's four (the rest it ignores)
PROJECT_HPARAMS: dict[str, set[str]] = {
    "radam": {"weight_decay", "betas", "eps"},
    "adam": {"weight_decay", "betas", "eps"},
    "adamw": {"weight_decay", "betas", "eps"},
    "sgd": {"weight_decay", "momentum"},
}
_RENAMED = {"radam": "torch_radam"}  # torch.optim classes whose name a project one takes
# lbfgs needs a closure, sparseadam sparse gradients, muon 2-D parameters only
_LEFT_OUT = frozenset({"lbfgs", "sparseadam", "muon", "optimizer"})
# constructor arguments that share a spec hyperparameter's name but not its meaning
_NOT_MAPPED: dict[str, frozenset[str]] = {"adafactor": frozenset({"eps"})}  # a pair there

Factory = Callable[..., "torch.optim.Optimizer"]


def torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    """``torch.optim``'s optimizer classes by their names here (imports torch)."""
    import torch

    out: dict[str, type[torch.optim.Optimizer]] = {}
    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            continue
        lower = attr.lower()
        if lower in _LEFT_OUT:
            continue
        name = _RENAMED.get(lower, lower)
        if name not in PROJECT_OPTIMIZERS:
            out[name] = cls
    return out


def optimizer_names(*, with_torch: bool = True) -> tuple[str, ...]:
    """Every optimizer name: the project's, torch's (when ``with_torch``), plugins'."""
    names = list(PROJECT_OPTIMIZERS)
    if with_torch:
        names += sorted(torch_optimizers())
    plugins = sorted(n for n in registry._plugins("optimizer") if n not in names)
    return (*names, *plugins)


def source_of(name: str) -> str:
    """``builtin``, ``torch.optim`` or the plugin's distribution (no import for the first)."""
    if name in PROJECT_OPTIMIZERS:
        return registry.BUILTIN
    ep = registry._plugins("optimizer").get(name)
    if ep is not None:
        return registry._plugin_label(ep)
    return "torch.optim"


def optimizer_factory(name: str) -> Factory:
    """What builds optimizer ``name``: ``UnknownNameError`` listing the installed ones,
    ``PluginError`` for a broken plugin."""
    if name in PROJECT_OPTIMIZERS:
        from radam.factory import make_optimizer as project_factory

        return project_factory
    ep = registry._plugins("optimizer").get(name)
    if ep is not None:
        obj = registry._load("optimizer", name, ep)
        if not callable(obj):
            raise SpecError(f"the optimizer plugin {name!r} is not callable", field="optimizers")
        factory: Factory = obj
        return factory
    found = torch_optimizers().get(name)
    if found is None:
        raise UnknownNameError(
            f"unknown optimizer {name!r}", field="optimizers", choices=optimizer_names()
        )
    return found


def accepted_hparams(factory: Factory) -> set[str] | None:
    """The spec hyperparameters ``factory`` takes; None when it takes any (``**kwargs``)."""
    params = inspect.signature(factory).parameters  # a class: its constructor's, less self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    unlike = _NOT_MAPPED.get(getattr(factory, "__name__", "").lower(), frozenset())
    return {name for name in SPEC_HPARAMS if name in params and name not in unlike}


def check_optimizer(name: str, *, given: Iterable[str] = ()) -> None:
    """Raise when ``name`` is not installed, or when it is outside the project's four and a
    hyperparameter the spec sets (``given``) is one its constructor does not take."""
    if name in PROJECT_OPTIMIZERS:
        return
    accepted = accepted_hparams(optimizer_factory(name))
    if accepted is None:
        return
    refused = sorted(set(given) - accepted)
    if refused:
        raise SpecError(
            f"optimizer {name!r} takes no {', '.join(refused)} (it takes "
            f"lr{''.join(', ' + a for a in sorted(accepted))}); drop it from the spec or "
            "choose another optimizer",
            field=refused[0],
        )


def make_optimizer(
    name: str,
    params: Iterable[Any],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """Optimizer ``name`` over ``params`` with the spec's hyperparameters where it takes them."""
    hparams: dict[str, Any] = {
        "weight_decay": weight_decay,
        "momentum": momentum,
        "betas": betas,
        "eps": eps,
    }
    factory = optimizer_factory(name)
    if name in PROJECT_OPTIMIZERS:  # radam.factory: the paper's conventions per name
        return factory(name, params, lr=lr, **hparams)
    accepted = accepted_hparams(factory)
    if accepted is not None:
        hparams = {k: v for k, v in hparams.items() if k in accepted}
    return factory(params, lr=lr, **hparams)


def describe_optimizer(name: str) -> dict[str, Any]:
    """What ``GET /optimizers`` and ``robustness optimizers`` show of one optimizer."""
    row: dict[str, Any] = {
        "name": name,
        "source": source_of(name),
        "packable": name in PACKABLE,
        "parameters": [],
        "error": None,
    }
    try:
        factory = optimizer_factory(name)
        accepted = (
            PROJECT_HPARAMS.get(name) if name in PROJECT_OPTIMIZERS else accepted_hparams(factory)
        )
        row["parameters"] = ["lr", *(sorted(accepted) if accepted is not None else SPEC_HPARAMS)]
    except SpecError as exc:
        row["error"] = str(exc)
    return row
