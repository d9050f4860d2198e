"""prmh.installed against its reference, ``importlib.metadata`` (CPython 3.11+'s standard
library, Lib/importlib/metadata/__init__.py: ``MetadataPathFinder`` and ``Lookup`` find the
folders, ``entry_points()`` keeps the first distribution of each normalised name,
``EntryPoint.load`` imports ``module:attr``): the same versions, entry points and folders, on
this environment and on hand-made installs that shadow each other."""

from __future__ import annotations

import importlib.metadata as metadata
import sys
import textwrap

import pytest

from prmh import installed


def reference_entry_points(group):
    return [(ep.name, ep.value, ep.dist.name, ep.dist.version)
            for ep in metadata.entry_points(group=group)]  # fmt: skip


def reference_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture
def installs(tmp_path, monkeypatch):
    """Two directories put ahead of sys.path: the first shadows a distribution of the second
    and of the environment (rich); an egg-info folder, a name with dots and dashes, entry
    points with comments, blank lines, extras and an attribute path."""
    first, second = tmp_path / "first", tmp_path / "second"
    folders = {
        first / "Fancy_Lib.X-2.1rc1.dist-info": ("Fancy.Lib-x", "2.1rc1"),
        first / "rich-0.0.1.dist-info": ("rich", "0.0.1"),
        first / "legacy_plugin.egg-info": ("legacy-plugin", "0.3"),
        second / "fancy_lib_x-1.0.dist-info": ("fancy-lib-x", "1.0"),
        second / "other-4.dist-info": ("other", "4"),
        second / "lower-5.dist-info": ("lower", "5"),
    }
    for folder, (name, number) in folders.items():
        folder.mkdir(parents=True)
        meta = "PKG-INFO" if folder.suffix == ".egg-info" else "METADATA"
        header = "version" if name == "lower" else "Version"  # headers ignore case
        (folder / meta).write_text(
            f"Metadata-Version: 2.1\nName: {name}\n{header}: {number}\nSummary: x\n\n"
            "Name: not-a-header\nVersion: 9\n"
        )
    (first / "Fancy_Lib.X-2.1rc1.dist-info" / "entry_points.txt").write_text(
        textwrap.dedent("""\
        # a comment
        [prmh]
        fancy = fancy_mod:Thing.inner [extra]

          spaced   =   fancy_mod
        [console_scripts]
        fancy = fancy_mod:main
        """)
    )
    (second / "fancy_lib_x-1.0.dist-info" / "entry_points.txt").write_text(
        "[prmh]\nshadowed = fancy_mod\n"
    )
    (first / "legacy_plugin.egg-info" / "entry_points.txt").write_text("[prmh]\nlegacy = os.path\n")
    (second / "other-4.dist-info" / "entry_points.txt").write_text("[prmh]\nother = os:sep\n")
    (first / "fancy_mod.py").write_text("class Thing:\n    inner = 42\n\ndef main():\n    pass\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    return first, second


def test_entry_points_are_importlib_metadatas(installs):
    for group in ("prmh", "console_scripts"):
        assert installed.entry_points(group) == reference_entry_points(group)
    names = [name for name, *_ in installed.entry_points("prmh")]
    assert {"fancy", "spaced", "legacy", "other"} <= set(names) and "shadowed" not in names


def test_loaded_entry_points_are_importlib_metadatas(installs):
    points = {ep.name: ep for ep in metadata.entry_points(group="prmh")}
    for name, value, *_ in installed.entry_points("prmh"):
        assert installed.load(value) is points[name].load()
    assert installed.load("fancy_mod:Thing.inner [extra]") == 42


def test_versions_and_folders_are_importlib_metadatas(installs):
    names = ["fancy-lib-x", "Fancy.Lib_X", "rich", "legacy-plugin", "other", "lower", "nothing"]
    for name in names:
        assert installed.version(name) == reference_version(name), name
        found = [d.folder for d in installed.distributions(name)]
        assert found == [d._path for d in metadata.distributions(name=name)], name
    assert installed.versions(names) == {name: reference_version(name) for name in names}
    assert installed.version("fancy-lib-x") == "2.1rc1" and installed.version("rich") == "0.0.1"


def test_this_environment_reads_as_importlib_metadata_reads_it():
    """Every installed distribution's version, the console scripts and prmh's own folders."""
    for dist in metadata.distributions():
        assert installed.version(dist.name) == reference_version(dist.name), dist.name
    assert installed.entry_points("console_scripts") == reference_entry_points("console_scripts")
    texts = [d.read_text("direct_url.json") for d in installed.distributions("prmh")]
    assert texts == [d.read_text("direct_url.json") for d in metadata.distributions(name="prmh")]


@pytest.mark.parametrize("kind", ["zip", "egg"])
def test_a_zip_archive_or_an_egg_on_sys_path_is_read_through_importlib_metadata(
    tmp_path, monkeypatch, kind
):
    """Metadata in a zip archive on sys.path (a zipapp) or in a legacy egg folder's EGG-INFO
    is found as importlib finds it: prmh hands the lookup to importlib.metadata then."""
    import zipfile

    files = {"PKG-INFO": "Name: packed-plugin\nVersion: 3.2\n",
             "entry_points.txt": "[prmh]\npacked = os.path\n"}  # fmt: skip
    if kind == "zip":
        where = tmp_path / "bundle.zip"
        with zipfile.ZipFile(where, "w") as z:
            for name, text in files.items():
                z.writestr(f"packed_plugin-3.2.dist-info/{name.replace('PKG-INFO', 'METADATA')}",
                           text)  # fmt: skip
    else:
        where = tmp_path / "packed_plugin-3.2-py3.11.egg"
        (where / "EGG-INFO").mkdir(parents=True)
        for name, text in files.items():
            (where / "EGG-INFO" / name).write_text(text)
    monkeypatch.setattr(sys, "path", [str(where), *sys.path])
    assert installed.version("packed-plugin") == "3.2" == reference_version("packed-plugin")
    assert installed.entry_points("prmh") == reference_entry_points("prmh")
    assert ("packed", "os.path", "packed-plugin", "3.2") in installed.entry_points("prmh")
    (found,) = installed.distributions("packed-plugin")
    assert found.version == "3.2"
