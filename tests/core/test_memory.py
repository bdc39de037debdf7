"""fcn.core.memory: a job that cannot fit is refused before it starts."""

import pytest

from fcn.core import memory
from fcn.core.errors import InputError


def test_a_job_that_cannot_fit_in_memory_is_refused_before_it_starts(monkeypatch):
    monkeypatch.setattr(memory, "_available_memory", lambda: 8 * 2**30)
    with pytest.raises(
        InputError, match=r"x.jpg at --scale 100: needs about 9.0 GiB of memory, 8.0 GiB available; hint"
    ):
        memory.check_memory(9 * 2**30, "x.jpg at --scale 100", "hint")
    memory.check_memory(7 * 2**30, "x.jpg")
    monkeypatch.setattr(memory, "_available_memory", lambda: None)
    memory.check_memory(1 << 60, "x.jpg")  # unknown: not refused


def test_available_memory_is_meminfo_capped_by_the_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    8388608 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert memory._available_memory(meminfo, cgroup) == 8 * 2**30
    (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2**30}\n")
    assert memory._available_memory(meminfo, cgroup) == 3 * 2**30
    (cgroup / "memory.max").write_text("max\n")
    assert memory._available_memory(meminfo, cgroup) == 8 * 2**30
    assert memory._available_memory(tmp_path / "none", tmp_path / "none") is None
