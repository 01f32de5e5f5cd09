"""Turns Lethe's errors into one clear line and an exit code an operator's script can use."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from erasure.errors import ConfigurationError, ErasureError, RequestNotFoundError, ReviewPendingError
from lethe.errors import Neo4jServerError
from lineage.errors import (BatchRejectedError, ContentConflictError, ErasedContentError,
                            GraphUnavailableError, LineageError, NotFoundError, PepperError)
from unlearning.errors import UnlearningError

EXIT_BLOCKED = 1      # the command ran, and its answer is "no" (e.g. preflight found erased data)
EXIT_BAD_INPUT = 2    # fix the input or the arguments and run again
EXIT_UNAVAILABLE = 3  # Neo4j or the local server is not reachable / not startable
EXIT_NOT_FOUND = 4

err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable)

_CODES: list[tuple[type[BaseException], int]] = [
    (GraphUnavailableError, EXIT_UNAVAILABLE),
    (Neo4jServerError, EXIT_UNAVAILABLE),
    (NotFoundError, EXIT_NOT_FOUND),
    (RequestNotFoundError, EXIT_NOT_FOUND),
    (ReviewPendingError, EXIT_BLOCKED),
    (BatchRejectedError, EXIT_BAD_INPUT),
    (ContentConflictError, EXIT_BAD_INPUT),
    (ErasedContentError, EXIT_BAD_INPUT),
    (PepperError, EXIT_BAD_INPUT),
    (ConfigurationError, EXIT_BAD_INPUT),
    (ErasureError, EXIT_BAD_INPUT),
    (LineageError, EXIT_BAD_INPUT),
    (UnlearningError, EXIT_BAD_INPUT),
    (ValidationError, EXIT_BAD_INPUT),  # a model built from the command's arguments
    (FileNotFoundError, EXIT_BAD_INPUT),
]


def exit_code_for(exc: BaseException) -> int | None:
    return next((code for kind, code in _CODES if isinstance(exc, kind)), None)


def friendly_errors(fn: F) -> F:
    """Print known errors as one message (no traceback) and exit with their code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # translated below, or re-raised untouched
            code = exit_code_for(exc)
            if code is None:
                raise
            err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)
