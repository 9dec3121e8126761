"""Options and error handling shared by several commands (a module of its own: the
command modules import it without importing each other or ``trirl.cli.main``)."""

from __future__ import annotations

import functools
import sys

import click

from trirl.errors import Interrupted, TrirlError

NEW_RUN_BACKEND = "auto; with --resume: the run's own"
RUN_BACKEND = "the backend the run trained on"


def backend_option(default_text: str):
    """``--backend mjx|c|auto`` for a command that steps environments (see
    ``trirl.envs.resolve_backend``); ``None`` when not given."""
    return click.option(
        "--backend", type=click.Choice(["mjx", "c", "auto"]), default=None,
        help="Physics backend: mjx (MuJoCo MJX on XLA: GPUs, fully compiled programs), c "
             "(MuJoCo C on all CPU cores, several times faster without a GPU) or auto (MJX "
             f"when JAX sees a GPU, else C) [default: {default_text}].")


def friendly(fn):
    """Turn TrirlError into one line on stderr and exit code 2 (no traceback), and an
    interruption into its one-line message and exit code 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Interrupted as exc:
            click.echo(f"trirl: {exc}", err=True)
            sys.exit(130)
        except TrirlError as exc:
            click.echo(f"trirl: error: {exc}", err=True)
            sys.exit(2)

    return wrapper
