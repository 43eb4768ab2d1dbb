"""Command-line values that need no converting, taken as they are — without importing pydantic.

typer (0.29) converts every parameter's value through a pydantic ``TypeAdapter``, which it builds
the first time the parameter is read: a task id, ``--limit 50``, even an option left at its
default. Importing pydantic and building those adapters took more than importing typer itself,
on every command, so ``agentfirm daemon status`` could not start in less than 2.5x ``import
typer`` (bench/cli_startup.sh) whatever agentfirm did.

``install`` puts a cheap step in front of typer's own for ``str``, ``bool`` and ``int`` parameters
(a flag left unset is None, which typer converts too): a value typer's adapter would return
unchanged (a ``str`` for a ``str``, a ``bool`` for a ``bool``; an ``int``, or a string of digits,
inside the parameter's ``min``/``max`` for an ``int``) is returned as is; any other value
goes to typer's adapter, built then, so its conversions and its error messages stay typer's.
Every other annotation (paths, choices, lists, custom parsers) keeps typer's adapter. typer's
internals moved before: if the ones used here are missing, ``install`` leaves typer as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer._click import Context
    from typer._coercion import RuntimeParam
    from typer.core import _TyperParameter

_UNSET = object()
_FLAG_WORDS: dict[object, bool] = {"1": True, "0": False, "true": True, "false": False}


def taken_as_is(annotation: object, value: object, low: Any, high: Any) -> object:
    """``value`` when typer's adapter for ``annotation`` (a ``str``, a ``bool``, or an ``int``
    between ``low`` and ``high``, either None for no bound) would return it unchanged, converted
    as it would (a string of ASCII digits to its ``int``); else ``_UNSET``."""
    if annotation is str:
        return value if type(value) is str else _UNSET
    if annotation is bool:  # a flag's value, or its environment variable's (AGENTFIRM_NO_DAEMON=1)
        return value if type(value) is bool else _FLAG_WORDS.get(value, _UNSET)
    if annotation is not int:
        return _UNSET
    if type(value) is str and value.isascii() and value.isdigit():
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        return _UNSET
    if (low is not None and number < low) or (high is not None and number > high):
        return _UNSET  # typer's adapter says what is wrong, in its words
    return number


def install() -> None:
    """Put the cheap step in front of typer's conversion of ``str``, ``bool`` and ``int`` parameters
    (once; a no-op if typer's internals are not the ones this was written against)."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another typer
        return
    if getattr(_TyperParameter, "_agentfirm_cheap", False) or not hasattr(
        _TyperParameter, "get_runtime_param"
    ):
        return

    @dataclass(frozen=True)
    class AsIsFirst(RuntimeParam):
        """Takes a value as is when it may; else typer's adapter, built on first need."""

        holder: list[RuntimeParam]

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            info = self.parameter_info
            taken = taken_as_is(self.annotation, value, info.min, info.max)
            if taken is not _UNSET:
                return taken
            if not self.holder:
                self.holder.append(build_runtime_param(param.type_descriptor))
            return self.holder[0]._coerce_value(value, param=param, ctx=ctx)

    original = _TyperParameter.get_runtime_param

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        info = self.type_descriptor.parameter_info
        plain = self.type_descriptor.annotation in (str, int, bool) and info.parser is None
        if self._runtime_param is None and plain and not info.clamp:
            self._runtime_param = AsIsFirst(
                parameter_info=info, annotation=self.type_descriptor.annotation, holder=[]
            )
        return original(self)

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    _TyperParameter._agentfirm_cheap = True  # type: ignore[attr-defined]
