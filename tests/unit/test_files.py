"""``io``: which temporary files a process may remove as stale (``remove_stale_parts``)."""

from __future__ import annotations

import os

from massif.files import create_temp, remove_stale_parts, write_atomic
from tests.helpers.killed import aged, killed_writer


def test_only_the_files_of_dead_processes_of_this_machine_from_before_are_removed(tmp_path):
    fd, mine = create_temp(tmp_path / "graph.json")  # a write of this process, under way
    os.close(fd)
    dead = aged(killed_writer(tmp_path / "graph.json"))
    writer, _, _ = dead.name.rsplit(".", 2)  # .graph.json.<host>-<pid>, <random>, part
    host, pid = writer.rsplit(".", 1)[1].split("-")
    other_host = tmp_path / dead.name.replace(f".{host}-", ".000000-")
    fresh = tmp_path / f"{writer}.0badcafe.part"  # a dead process's, but newer than this one
    unrelated = [tmp_path / n for n in (".graph.json.1a2b3c4d.part", "graph.json.part",
                                        f".x.{host}-{pid}.part")]
    for p in (other_host, fresh, *unrelated):
        p.write_bytes(b"")
    for p in (mine, other_host, *unrelated):
        aged(p)
    assert remove_stale_parts(tmp_path) == [dead]
    for kept in (mine, other_host, fresh, *unrelated):
        assert kept.exists(), kept.name


def test_the_first_write_in_a_folder_removes_its_stale_files(tmp_path):
    dead = aged(killed_writer(tmp_path / "a.txt"))
    other = aged(killed_writer(tmp_path / "b.txt"))  # another target's: stale all the same
    write_atomic(tmp_path / "a.txt", "ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert not dead.exists() and not other.exists()
