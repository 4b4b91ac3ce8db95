"""Command-line options made from a parameter model, so a parameter is declared only once."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

M = TypeVar("M", bound=BaseModel)

SHORT_NAMES = {
    "duration_seconds": "--duration",
    "interval_seconds": "--interval",
    "speed_multiplier": "--speed",
}
"""Shorter flags for the longest parameter names (the long form works too)."""


def _option(name: str, field: Any) -> inspect.Parameter:
    flags = [f"--{name.replace('_', '-')}"]
    if name in SHORT_NAMES:
        flags.append(SHORT_NAMES[name])
    info = typer.Option(*flags, help=field.description, show_default=field.default is not None)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=field.default,
        annotation=Annotated[field.annotation, info],
    )


def model_options(
    model: type[M], console: Console
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a typer command one option per field of `model`; the command receives the
    validated model as its first argument. Invalid values exit 2 with the field named."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
        fields = [_option(name, field) for name, field in model.model_fields.items()]

        @functools.wraps(command)
        def wrapper(**given: Any) -> None:
            values = {name: given.pop(name) for name in model.model_fields}
            # Only what was given is "set": the trigger passes just those to the deployment.
            chosen = {k: v for k, v in values.items() if v != model.model_fields[k].default}
            try:
                params = model(**chosen)
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(part) for part in error["loc"]) or "parameters"
                    console.print(f"[red]error:[/red] {field}: {error['msg']}")
                raise typer.Exit(2) from None
            command(params, **given)

        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        parameters = fields + own
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
