"""Private files (``ledger.files``): owner-only modes and atomic, private replacement."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger.files import PrivateReplacement, create_private_file, make_private_dir

pytestmark = pytest.mark.usefixtures("open_umask")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_directory_is_0700_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    make_private_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a" / "b") == 0o700
    (tmp_path / "mine").mkdir(mode=0o755)
    make_private_dir(tmp_path / "mine")
    assert mode(tmp_path / "mine") == 0o755


def test_a_path_that_is_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError):
        make_private_dir(tmp_path / "f")


def test_a_new_file_is_0600_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    assert create_private_file(tmp_path / "new") is True
    assert mode(tmp_path / "new") == 0o600
    (tmp_path / "old").write_text("kept")
    (tmp_path / "old").chmod(0o644)
    assert create_private_file(tmp_path / "old") is False
    assert mode(tmp_path / "old") == 0o644
    assert (tmp_path / "old").read_text() == "kept"


def test_a_replacement_is_0600_and_replaces_a_symlink_without_following_it(
    tmp_path: Path,
) -> None:
    target, victim = tmp_path / "out.json", tmp_path / "victim"
    victim.write_text("victim")
    target.symlink_to(victim)
    with PrivateReplacement(target) as replacement:
        (temp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.json.")]
        assert mode(temp) == 0o600  # private from the moment it exists
        replacement.publish(b"new")
    assert not target.is_symlink()
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert victim.read_text() == "victim"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim"]


def test_an_unpublished_replacement_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), PrivateReplacement(target):
        raise RuntimeError("the bundle could not be built")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
