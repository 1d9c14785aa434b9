"""Device and thread helpers of the torch work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def local_torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (process-wide; callers hold ``LEARNED_LOCK``)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


