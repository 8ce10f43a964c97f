"""Placeholder while the command is being written."""

import click


@click.command(name="sample")
def command():
    """Not written yet."""
    raise click.ClickException("not written yet")
