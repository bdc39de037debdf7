"""The one progress bar of the command lines outside ``model.fit``: tqdm, on stderr."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int, *, unit: str = "image", description: str | None = None, enabled: bool = True) -> tqdm:
    """A tqdm bar over ``total`` steps; ``enabled=False`` (``-q``) returns a bar that prints nothing.

    Use it as a context manager and call ``bar.update(n)`` per finished step.
    """
    return tqdm(
        total=total,
        unit=unit,
        desc=description,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )
