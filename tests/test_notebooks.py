"""Every example notebook runs top to bottom on a small subset (as a newcomer would run it)."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# small subsets: the notebooks read DQ_EXAMPLE_N
SIZES = {
    "01-images-fashion-mnist.ipynb": 400,
    "02-texts-rotten-tomatoes.ipynb": 400,
    "03-table-leaky-feature.ipynb": None,
    "04-bring-your-own-embeddings.ipynb": 1500,
    "05-training-dynamics.ipynb": 300,
}
# the notebooks that export clean splits, and the splits they ask for
EXPORTS_SPLITS = {name: {"train", "val", "test"} for name in
                  ("01-images-fashion-mnist.ipynb", "02-texts-rotten-tomatoes.ipynb", "03-table-leaky-feature.ipynb")}


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_notebook_runs(name, tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if SIZES[name]:
        monkeypatch.setenv("DQ_EXAMPLE_N", str(SIZES[name]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    # the Explorer cell produced a widget view, and the export wrote a manifest
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "no widget was displayed"
    manifests = list(tmp_path.glob("clean/*/manifest.json"))
    if name in EXPORTS_SPLITS:
        assert len(manifests) == 1, "the notebook exported nothing"
        counts = json.loads(manifests[0].read_text())["counts"]
        assert counts["exported"] > 0 and set(counts["per_split"]) == EXPORTS_SPLITS[name]
        assert sum(counts["per_split"].values()) == counts["exported"]
        assert min(counts["per_split"].values()) > 0
    if name == "04-bring-your-own-embeddings.ipynb":
        # the new batch (half of it from classes the analysis never saw) scored against the analysis
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                          for o in c.get("outputs", []) if o.output_type == "stream")
        auroc = re.search(r"unseen classes AUROC ([0-9.]+)", printed)
        assert auroc and float(auroc.group(1)) > 0.7, printed
        summaries = [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code" and "new_ood.summary()" in c.source
                     for o in c.get("outputs", []) if o.output_type == "execute_result"]
        ood = re.search(r"^ood\s+(?:ood\s+)?(\d+)", summaries[0], re.M) if summaries else None
        assert ood and int(ood.group(1)) > 0, summaries
