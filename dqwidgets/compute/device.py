"""Pick the torch device every compute step runs on."""

from __future__ import annotations

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
