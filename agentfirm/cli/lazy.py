"""A command group whose commands are imported when one is named: ``agentfirm tasks list`` imports
``cli/commands/tasks.py`` and no other command module (click's documented "lazy group", with
typer building each command as it would have).

The group's ``commands`` mapping lists every name from the start, in order, so ``--help``, typo
suggestions ("did you mean") and shell completion see them all; reading one entry imports its
module and builds its click command, once. ``--help`` reads them all (it shows each one's help).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import typer
from typer._click import Command, Context
from typer.core import TyperGroup

Target = tuple[str, str]
"""``(module, attribute)``: a typer command function, or a ``typer.Typer`` for a group."""


class LazyCommands(MutableMapping[str, Command]):
    """Name → click command; a lazy entry is built from its ``Target`` when first read."""

    def __init__(self, built: Mapping[str, Command], lazy: Mapping[str, Target]) -> None:
        self._built = dict(built)
        self._lazy = {name: target for name, target in lazy.items() if name not in built}
        self._order = [*self._built, *self._lazy]

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._lazy:
                raise KeyError(name)
            self._built[name] = build(name, self._lazy.pop(name))
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._lazy.pop(name, None)
        self._built[name] = command
        if name not in self._order:
            self._order.append(name)

    def __delitem__(self, name: str) -> None:
        if self._built.pop(name, None) is None and self._lazy.pop(name, None) is None:
            raise KeyError(name)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._lazy


def build(name: str, target: Target) -> Command:
    """The click command typer makes for ``target`` registered as ``name`` (the root's markup
    and exception settings: none and plain)."""
    module, attribute = target
    found = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
    if isinstance(found, typer.Typer):
        holder.add_typer(found, name=name)
    else:
        holder.command(name)(found)
    command: Command = typer.main.get_group(holder).commands[name]
    return command


class LazyGroup(TyperGroup):
    """A ``TyperGroup`` whose subcommands come from ``LAZY`` (set by a subclass) as named."""

    LAZY: ClassVar[Mapping[str, Target]] = {}

    def __init__(self, *, commands: Mapping[str, Command] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = LazyCommands(commands or {}, self.LAZY)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)
