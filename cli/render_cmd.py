"""``trirl render``: a GIF of a run's deterministic policy or of a demo file's states,
offscreen (``trirl.render``)."""

from __future__ import annotations

from pathlib import Path

import click

from trirl.cli.options import friendly as _friendly


@click.command("render")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="GIF to write [default: RUN/gait.gif, or DEMOS.gif next to the file].")
@click.option("--beside", default="auto", show_default=True,
              help="For a run: 'auto' puts the run's own demonstrations beside the policy "
                   "when they keep states (motion capture converted by trirl does); a demo "
                   "file or another run directory (e.g. the expert a Go2 run learned from) "
                   "puts that; 'none' nothing. For a demo file: a second file or a run.")
@click.option("--seconds", type=float, default=10.0, show_default=True,
              help="Simulated seconds to draw (at most one episode).")
@click.option("--episode", type=int, default=0, show_default=True,
              help="Which episode of the demo file.")
@click.option("--seed-index", type=int, default=0, show_default=True,
              help="Which seed of a multi-seed run.")
@click.option("--fps", type=float, default=25.0, show_default=True,
              help="Frames per simulated second (states subsampled from the control rate).")
@click.option("--size", default="320x240", show_default=True, metavar="WxH",
              help="Size of each panel in pixels.")
@_friendly
def render(target, output, beside, seconds, episode, seed_index, fps, size):
    """Draw TARGET -- a run directory (its deterministic policy, any env; the learned gait
    beside the mocap for the robots) or a demo file (its states replayed) -- into an
    animated GIF, offscreen (MuJoCo with EGL or OSMesa; no display needed)."""
    from trirl import render as render_lib
    from trirl.errors import TrirlError

    try:
        width, height = (int(v) for v in size.lower().split("x"))
        assert width >= 16 and height >= 16
    except (ValueError, AssertionError):
        raise TrirlError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 320x240 (at least "
                         "16x16)") from None
    if not fps > 0:
        raise TrirlError(f"--fps must be > 0 (got {fps})")
    if output is None:
        output = target / "gait.gif" if target.is_dir() else target.with_suffix(".gif")
    info = render_lib.render_target(
        target, output, beside=None if beside == "none" else beside, seed_index=seed_index,
        episode=episode, seconds=seconds, fps=fps, width=width, height=height)
    for note in info["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"wrote {output}: {info['frames']} frames of {info['width']}x{info['height']} "
               f"at {info['fps']:g} fps")
