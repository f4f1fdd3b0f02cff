"""Pick the torch device every compute step runs on."""

from __future__ import annotations

from contextlib import contextmanager

import torch


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA when a GPU is visible, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a
    ``torch.device`` are taken as given (a CUDA request without a GPU is a clear error)."""
    if isinstance(device, torch.device):
        dev = device
    elif device is None or device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from err
    else:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but torch sees no GPU; use device='auto' or 'cpu'")
    return dev


# Below this many multiply-adds per operation, extra CPU threads cost more in synchronisation than they
# save on a busy 2-core machine (measured: a 2400 x 32 probe fit takes 0.07 s on one thread, 5 s on
# two; the 100k x 128 x 10-class probe 34 s on one thread, 62 s on two).
SMALL_WORK = 200_000_000


@contextmanager
def cpu_threads_for(work: float, device: torch.device):
    """Run a block on one CPU thread when each operation is small (``work`` multiply-adds), so that
    thread synchronisation does not dominate; otherwise leave torch's thread count as it is."""
    if device.type != "cpu" or work >= SMALL_WORK:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_parallel_map(fn, items, device: torch.device) -> list:
    """``[fn(x) for x in items]``; on a CPU the items run in parallel Python threads (as many as torch
    has threads), each on one torch thread: independent tasks side by side (folds, blocks of kNN cells)
    instead of every small operation split across threads, which on a busy machine waits more in
    synchronisation than it computes. torch releases the GIL inside its operations."""
    items = list(items)
    before = torch.get_num_threads()
    workers = min(len(items), before) if device.type == "cpu" else 1
    if workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    def one_thread(x):
        torch.set_num_threads(1)
        return fn(x)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="dqwidgets-cpu") as pool:
            return list(pool.map(one_thread, items))
    finally:
        torch.set_num_threads(before)
