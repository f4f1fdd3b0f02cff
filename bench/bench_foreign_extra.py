"""Foreign samples: planted cases beside bench_quality's, to check that the foreign-region rule
(dqwidgets.compute.foreign) is not tuned to those: (a) 120 sklearn digits, upscaled to 28 px, among
notebook01's Fashion-MNIST images (its own foreign removed), random labels; (b) the same without
any foreign sample (clean: false positives)."""
import sys, time, numpy as np, pandas as pd
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import bench_quality as bq
import dqwidgets as dq
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score as A
case, X = bq.load_case("notebook01_fashion_mnist")
keep = ~case.is_foreign
Xk, yk = X[keep], case.labels[keep]
rng = np.random.default_rng(5)
d = load_digits()
pick = rng.choice(len(d.images), 120, replace=False)
imgs = [np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR)) for i in pick]
import os
path = str(bq.WORKDIR / "digits_effnet.npy")
if os.path.exists(path):
    F = np.load(path)
else:
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"image": imgs, "label": ["x"] * 120}), image="image", label="label")
    F = np.asarray(ds.embed(cache_dir=bq.WORKDIR / "cache", progress=False).features, dtype=np.float32)
    np.save(path, F)
label_set = sorted(set(yk))
fl = rng.choice(label_set, 120)
feats = np.vstack([Xk, F]); labels = np.concatenate([yk, fl]).astype(object)
f = np.r_[np.zeros(len(Xk), bool), np.ones(120, bool)]
lines = ["Foreign samples beside bench_quality (python bench/bench_foreign_extra.py): EfficientNet-Lite0 features,",
         "default flags.", "", "| case | n | foreign | flagged | precision | recall | AUROC | est. P | foreign -> drop | s | loadavg |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for nm, XX, LL, ff in (("digits_in_fashion", feats, labels, f), ("fashion_clean", Xk, yk, np.zeros(len(Xk), bool))):
    t = time.perf_counter()
    an = dq.analyze(dq.Dataset.from_arrays(XX, LL), layout="pca", progress=False, workdir=bq.WORKDIR / "analyses")
    s = an.samples; fl_ = s["is_ood"].to_numpy(); summ = an.summary()
    msg = f"{nm}: n {len(XX)} foreign {ff.sum()} flagged {fl_.sum()} tp {(fl_ & ff).sum()}"
    if ff.any():
        msg += f" prec {(fl_ & ff).sum() / max(fl_.sum(), 1):.3f} rec {(fl_ & ff).mean() / ff.mean():.3f} AUROC {A(ff, s['ood_score']):.3f} est {summ.loc['ood', 'estimated_precision']} drop {(s['suggested_action'][ff] == 'drop').mean():.3f}"
    sec, load = time.perf_counter() - t, " ".join(open("/proc/loadavg").read().split()[:3])
    print(msg, f"sec {sec:.0f}", load, flush=True)
    tp = int((fl_ & ff).sum())
    if ff.any():
        lines.append(f"| {nm} | {len(XX)} | {int(ff.sum())} | {int(fl_.sum())} | {tp / max(fl_.sum(), 1):.3f} | {tp / ff.sum():.3f} | "
                     f"{A(ff, s['ood_score']):.3f} | {float(summ.loc['ood', 'estimated_precision']):.3f} | "
                     f"{(s['suggested_action'][ff] == 'drop').mean():.3f} | {sec:.0f} | {load} |")
    else:
        lines.append(f"| {nm} | {len(XX)} | 0 | {int(fl_.sum())} | — | — | — | — | — | {sec:.0f} | {load} |")
(bq.RESULTS / "bench_foreign_extra.md").write_text("\n".join(lines) + "\n")
