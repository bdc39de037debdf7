"""Memory a job may use: refuse one that cannot fit before it starts. No TensorFlow here."""

from __future__ import annotations

from pathlib import Path

from fcn.core.errors import InputError

_CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1
    ("memory.max", "memory.current"),
    ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
)


def _available_memory(meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still allocate: MemAvailable, capped by a cgroup limit; None when unknown."""
    limits = []
    try:
        with open(meminfo) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            limit = (Path(cgroup) / limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                limits.append(int(limit) - int((Path(cgroup) / usage_file).read_text().strip()))
            break
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def _format_bytes(count: float) -> str:
    """``123456789`` -> ``118 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def check_memory(needed: int, what: str, hint: str = "") -> None:
    """Refuse a job whose estimated memory ``needed`` (bytes) exceeds what is available.

    Args:
        needed: the estimate.
        what: names the job, e.g. ``"x.jpg at --scale 100"``.
        hint: what to change, appended to the message.

    Raises:
        InputError: one line with the estimate and what is available.
    """
    available = _available_memory()
    if available is None or needed <= available:
        return
    tail = f"; {hint}" if hint else ""
    raise InputError(
        f"{what}: needs about {_format_bytes(needed)} of memory, {_format_bytes(max(available, 0))} available{tail}"
    )
