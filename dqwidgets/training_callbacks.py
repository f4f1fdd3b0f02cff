"""Ready-made callbacks that feed a :class:`dqwidgets.training.TrainingRecorder`.

Imported only when :meth:`TrainingRecorder.huggingface_callback` or
:meth:`TrainingRecorder.lightning_callback` is called, so ``import dqwidgets`` never imports
``transformers`` or ``lightning``.

- Hugging Face ``Trainer``: a ``TrainerCallback`` gets no per-batch outputs, so at the end of each
  epoch it runs the model over the training set in order (eval mode, no gradients: one extra
  inference pass per epoch) with the Trainer's own collator and logs those logits.
- PyTorch Lightning: a ``Callback`` whose ``on_train_batch_end`` logs the logits the module's
  ``training_step`` returned, as computed during training (Pleiss et al.'s setting for AUM).
"""

from __future__ import annotations

import numpy as np


def _import(name: str, extra: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"this callback needs {name.split('.')[0]}: pip install {extra} ({err})") from err


def huggingface_callback(rec, ids, dataset=None, batch_size: int = 64):
    transformers = _import("transformers", "transformers")
    torch = _import("torch", "torch")
    ids = list(ids.tolist() if hasattr(ids, "tolist") else ids)
    if batch_size < 1:
        raise ValueError(f"huggingface_callback: batch_size must be >= 1, got {batch_size}")

    class DqRecorderCallback(transformers.TrainerCallback):
        """Logs the logits of every training sample to a dq.TrainingRecorder at each epoch's end."""

        def on_epoch_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
            data = dataset if dataset is not None else getattr(train_dataloader, "dataset", None)
            if data is None or not hasattr(data, "__len__"):
                raise ValueError("dq huggingface_callback: no sized training set to run over; pass dataset= "
                                 "(rows in the order of ids)")
            if len(data) != len(ids):
                raise ValueError(f"dq huggingface_callback: {len(ids)} ids for a training set of {len(data)} rows; "
                                 "pass the ids of train_dataset's rows, in order")
            collate = getattr(train_dataloader, "collate_fn", None)
            loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
            epoch = int(round(state.epoch)) - 1 if state.epoch is not None else 0
            device = next(model.parameters()).device
            was_training = model.training
            model.eval()
            start = 0
            try:
                with torch.no_grad():
                    for batch in loader:
                        if isinstance(batch, dict) or hasattr(batch, "keys"):
                            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
                            out = model(**batch)
                        else:
                            out = model(batch.to(device) if hasattr(batch, "to") else batch)
                        logits = _logits_of(out)
                        rec.log(ids[start:start + len(logits)], logits, max(epoch, 0))
                        start += len(logits)
            finally:
                model.train(was_training)
            rec.close()
            return control

    return DqRecorderCallback()


def _logits_of(out):
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if hasattr(out, "detach"):
        return out
    raise ValueError(f"dq huggingface_callback: the model's output ({type(out).__name__}) has no logits")


def lightning_callback(rec, ids_key: str = "ids", logits_key: str = "logits"):
    try:
        pl = _import("lightning.pytorch", "lightning")
    except ImportError:
        pl = _import("pytorch_lightning", "lightning")

    class DqRecorderCallback(pl.Callback):
        """Logs each training batch's logits (returned by training_step) to a dq.TrainingRecorder."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if not isinstance(outputs, dict) or logits_key not in outputs:
                raise ValueError(f"dq lightning_callback: training_step must return a dict with the batch's "
                                 f"logits under {logits_key!r}, e.g. {{'loss': loss, {logits_key!r}: logits, "
                                 f"{ids_key!r}: batch_ids}}; got {type(outputs).__name__}")
            ids = outputs.get(ids_key)
            if ids is None and isinstance(batch, dict):
                ids = batch.get(ids_key)
            if ids is None:
                raise ValueError(f"dq lightning_callback: no sample ids under {ids_key!r} in training_step's output "
                                 "or the batch; return the dataset ids of the batch's samples")
            rec.log(np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids), outputs[logits_key], trainer.current_epoch)

        def on_train_epoch_end(self, trainer, pl_module):
            rec.close()

    return DqRecorderCallback()
