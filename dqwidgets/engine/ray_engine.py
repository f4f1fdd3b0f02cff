"""``analyze(ds, engine="ray")``: the analysis as Ray Data passes over Parquet shards.

Stages (each resumable; see ``stages.py`` for the store):

1. ``embed``: chunks of rows through an actor pool (``map_batches(..., compute=ActorPoolStrategy)``,
   one GPU per actor where the cluster has GPUs), one embedding shard per chunk.

   How a pass runs (``_use_actors``): a worker that holds state (a model, the kNN index) over more than
   ``TASKS_MAX_ROWS`` rows, and every GPU embedding, is an actor pool; the other passes (precomputed
   embeddings, the score pass over broadcast statistics, small inputs) run as Ray Data tasks on the
   worker processes Ray keeps running, each process building its worker once (``_pooled_call``). At
   most CPUs - 1 actors or tasks run at once (a CPU stays free); each computes with the cluster's CPUs
   shared among them (``set_threads``: Ray starts workers with OMP_NUM_THREADS=1).
2. ``fit``: a sample of at most ``fit_sample`` valid rows is read (one remote task per shard) and the
   driver fits on it alone: the out-of-fold probe (stratified folds over the sample, as the local
   engine's; the fold of the id's hash for rows outside it), the class Gaussians of the Mahalanobis
   OOD score, the PCA axes and, for large N, the IVF coarse quantiser of the kNN index.
3. ``knn``: one index -- exact cosine search (torch) when N <= ``exact_max`` or faiss is missing, else
   a faiss IVF-Flat index trained on the sample and filled by one remote task -- then a sharded
   all-kNN pass (an actor pool, each actor holding the index). ``layout``: UMAP of ``layout_sample``
   anchors (on the analysis' own graph when they are all the samples).
4. ``score``: one pass over the embeddings writing per-row shards: the probe's probabilities, kNN and
   Mahalanobis distances, PCA projection and the layout placement of every non-anchor row.
5. The driver runs the local engine's own steps that need no N x D matrix -- label issues, foreign
   clusters, slices, drift, ATC -- on the out-of-fold probabilities (N x C) and the graph (N x k),
   calibrates the OOD scores, and flags by the registry's rules: the same ``Analysis`` as the local
   engine. Features, graph and probabilities reach it as memory-mapped ``.npy`` files written by
   remote tasks: nothing N x D or N x N is held by the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.analysis_input import check_dataset, features_are_cells
from dqwidgets.engine import stages as st

RAY_INSTALL = "pip install 'dqwidgets[ray]'  (or: pip install 'ray[data]>=2.9' faiss-cpu)"
DEFAULTS = {"chunk_rows": 4096, "fit_sample": 100_000, "layout_sample": 20_000, "exact_max": 60_000,
            "nprobe": "auto", "knn_recall": 0.97, "address": None, "num_cpus": None, "knn": "auto", "actors": None,
            "pool": "auto"}


# ---------------------------------------------------------------------------------------------- Ray
def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(f"analyze(engine='ray') needs Ray Data, which is not installed ({err}). "
                          f"Install it with: {RAY_INSTALL}") from None
    return ray


def connect(address=None, num_cpus=None):
    """The Ray runtime: the one already initialised (e.g. ``ray.init(address=...)`` by the user), the
    cluster at ``address``, or a new local runtime."""
    ray = import_ray()
    if address not in (None, "local"):
        _check_reachable(address)
    if ray.is_initialized():
        return ray
    if address not in (None, "local"):
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as err:
            raise ConnectionError(f"analyze(engine='ray'): could not connect to the Ray cluster at {address!r} "
                                  f"({type(err).__name__}: {err}). Start it with `ray start --head` or pass the "
                                  "address `ray status` prints") from None
        return ray
    return start_local(num_cpus)


# A loaded machine starts Ray's Python processes slowly (measured here at a load average of ~20 on
# 2 cores: a worker process took > 60 s to register, the dashboard agent 86 s to import): wait longer
# than Ray's defaults before a worker start counts as failed.
# And Ray starts its worker processes at nice 15 (below the raylet and the GCS): on a machine shared
# with other work at nice 0 the passes then get a small share of the CPUs (measured: the 300k kNN actor
# at ~25% of one core at a load average of 17). A local runtime's workers run at the caller's priority,
# as the local engine's work does.
LOCAL_SYSTEM_CONFIG = {"worker_register_timeout_seconds": 600, "worker_niceness": 0}


def start_local(num_cpus=None, object_store_memory=None, attempts: int = 3):
    """A local Ray runtime. On a loaded machine Ray's own start-up waits can run out (see
    ``_fixed_agent_ports``); a failed start is cleaned up -- the processes it left behind (the GCS
    server, monitors, the dashboard) are ended -- and tried again before the error is raised."""
    ray = import_ray()
    errors = []
    for attempt in range(attempts):
        before = _child_pids()
        t0 = time.monotonic()
        try:
            with _fixed_agent_ports():
                # address="local": always a new runtime of our own, never a cluster named by a leftover
                # /tmp/ray/ray_current_cluster file (a dead head node, or another user's runtime)
                ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                         include_dashboard=False, log_to_driver=False, _system_config=LOCAL_SYSTEM_CONFIG)
            return ray
        except Exception as err:
            errors.append(f"try {attempt + 1} after {time.monotonic() - t0:.0f} s: {type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}")
            ray.shutdown()
            _end_processes(_child_pids() - before)  # a failed ray.init leaves its head processes running
            if "timed out during startup" not in str(err) and "Deadline Exceeded" not in str(err):
                break
    raise RuntimeError("analyze(engine='ray'): could not start a local Ray runtime (" + "; ".join(errors) +
                       "). Ray's logs are under /tmp/ray/session_latest/logs (raylet.out says why). Check free "
                       "memory and /tmp space; on a busy machine start one beforehand with `ray start --head "
                       "--num-cpus=2` and pass engine_options={'address': 'auto'} (or set RAY_ADDRESS)")


def _child_pids() -> set:
    """Process ids whose parent is this process (Linux /proc; empty elsewhere)."""
    me, out = os.getpid(), set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            out.add(int(name))
    return out


def _end_processes(pids) -> None:
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
        except (OSError, ChildProcessError):
            pass


@contextmanager
def _fixed_agent_ports():
    """Give Ray's node agents fixed free ports. Otherwise the raylet waits at most 15 s for the agents
    to write the ports they chose, and exits when a loaded machine starts them slower
    (ray-project/ray#65983: "The current node timed out during startup"). And wait longer for the
    node to register (below)."""
    try:
        from ray._private import parameter
    except ImportError:
        yield
        return
    original = parameter.RayParams.__init__

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if getattr(self, "no_monitor", True) is False:
            self.no_monitor = True  # the autoscaler's monitor: nothing to scale on one local node
        for name in ("metrics_agent_port", "dashboard_agent_listen_port", "runtime_env_agent_port",
                     "metrics_export_port"):
            if hasattr(self, name) and not getattr(self, name):
                setattr(self, name, free_port())

    parameter.RayParams.__init__ = init
    # ... and tell the raylet the dashboard agent's port too: Ray 2.60 passes the agent its port but
    # not the raylet, which then waits 15 s for the agent to write it to a file and aborts ("Timed out
    # waiting for file .../dashboard_agent_listen_port_<node>") when a loaded machine imports the agent
    # slower (measured here: 30 s at a load average of 10, 86 s at 20). With the port given the raylet
    # starts at once and the agent comes up when it can.
    from ray._private import services

    start_process = services.start_ray_process

    def start_with_agent_port(command, process_type, *args, **kwargs):
        if process_type == "raylet" and not any(str(c).startswith("--dashboard_agent_listen_port=") for c in command):
            found = re.search(r"--listen-port=(\d+)", " ".join(str(c) for c in command))
            if found and int(found.group(1)) > 0:
                command = [*command, f"--dashboard_agent_listen_port={found.group(1)}"]
        return start_process(command, process_type, *args, **kwargs)

    services.start_ray_process = start_with_agent_port
    # Ray waits 30 s for the new node to show in the GCS, and one GCS call alone can take a minute on a
    # loaded machine ("Failed to get node info: Deadline Exceeded"): during the start, ask again for 4 min
    get_node = services.get_node

    def patient_get_node(*args, **kwargs):
        deadline = time.monotonic() + 240
        while True:
            try:
                return get_node(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    services.get_node = patient_get_node
    try:
        yield
    finally:
        parameter.RayParams.__init__ = original
        services.get_node = get_node
        services.start_ray_process = start_process


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"analyze(engine='ray'): the Ray address {address!r} is not host:port (e.g. "
                         "'10.0.0.5:6379' or 'ray://10.0.0.5:10001')")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"analyze(engine='ray'): the Ray cluster at {address!r} does not answer ({err}). "
                              "Check that `ray start --head` runs there and that the port is open, or leave the "
                              "address out to start a local Ray runtime") from None


def _actor_pool(ray, wanted, gpu: bool):
    res = ray.cluster_resources()
    if gpu:
        return max(1, int(res.get("GPU", 1)))
    cpus = int(res.get("CPU", 1))
    return int(wanted) if wanted else max(1, cpus - 1)  # one CPU stays free for the read tasks


# Up to this many rows a pass whose worker holds state (a model, the exact kNN reference) runs as Ray
# Data tasks on the runtime's running worker processes, each process building the state once
# (``_pooled_call``), instead of an actor pool: an actor is a new process that imports the engine and
# Ray Data (7 s of CPU measured here) before it works on a few hundred rows.
TASKS_MAX_ROWS = 50_000


def _use_actors(pool: str, stateful: bool, rows: int, gpu: bool) -> bool:
    """Whether a pass runs as an actor pool: ``pool="actors"``, a GPU embedding, or ``pool="auto"`` for
    a worker that holds state (a model, an index) over more than ``TASKS_MAX_ROWS`` rows. Passes whose
    state is small and broadcast (precomputed embeddings, the scores) run as tasks."""
    if gpu or pool == "actors":
        return True
    return pool == "auto" and stateful and rows > TASKS_MAX_ROWS


def _threads(ray, size: int) -> int:
    """Threads for each of ``size`` actors searching at once: the cluster's CPUs shared among them (on
    one 2-CPU node the one actor searches with both; the CPU left free runs only Ray Data's light
    bookkeeping during the pass)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, size))


def set_threads(n: int) -> int:
    """The thread count of the libraries a worker computes with: Ray starts each worker with
    OMP_NUM_THREADS=1 (its logical CPUs), so faiss, torch and BLAS would use one thread."""
    import torch

    n = max(1, int(n))
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    return n


_STATE: dict = {}  # per worker process: the stage worker of the last pass of each kind, built once


def _pooled_call(batch: pd.DataFrame, worker, spec: dict, token: str) -> pd.DataFrame:
    """A pass' batch in a Ray Data task: the process' ``worker(spec)`` for this pass (``token``) is
    built by the first task of the pass that runs in it and reused by the next ones (Ray runs tasks in
    worker processes it keeps), the previous pass' worker of that kind freed."""
    name = worker.__name__
    held = _STATE.get(name)
    if held is None or held[0] != token:
        _STATE.pop(name, None)
        held = _STATE[name] = (token, worker(spec))
    return held[1](batch)


def _run_pass(ray, items: list, worker, constructor_kwargs: dict, size: int, gpu: bool = False,
              actors: bool = True):
    """One Ray Data pass: each item (a dict per chunk) goes through ``worker``: a pool of ``size``
    actors, or (``actors=False``) at most ``size`` tasks at once on Ray's running worker processes."""
    from ray.data import ActorPoolStrategy

    if not items:
        return []
    size = min(size, len(items))
    data = ray.data.from_items(items, override_num_blocks=len(items))
    if actors:
        out = data.map_batches(worker, fn_constructor_kwargs=constructor_kwargs, batch_size=1,
                               batch_format="pandas", compute=ActorPoolStrategy(size=size),
                               num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)
    else:
        import uuid

        out = data.map_batches(_pooled_call, fn_kwargs={"worker": worker, "token": uuid.uuid4().hex,
                                                        **constructor_kwargs},
                               batch_size=1, batch_format="pandas", concurrency=size, num_cpus=1)
    return out.take_all()


# ---------------------------------------------------------------------------------------------- memory
def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024.0
    except (OSError, StopIteration):
        return None


class _AnonWatch:
    """The driver's peak anonymous resident memory (RssAnon: its own arrays, not the pages of
    memory-mapped files, which the kernel can drop) while a stage runs, sampled every 50 ms."""

    def __init__(self):
        import threading

        self.peak = _status_mb("RssAnon") or 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _status_mb("RssAnon") or 0.0)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_mb("RssAnon") or 0.0)


@contextmanager
def _stage(name, seconds: dict, memory: dict, anon: dict | None = None, log: Path | None = None):
    """Time a stage and record the driver's peak resident memory during it (Linux: VmHWM after
    resetting it through /proc/self/clear_refs; it counts touched pages of memory-mapped files too)
    and, in ``anon``, its peak anonymous memory (the arrays it holds)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    watch = _AnonWatch() if anon is not None else None
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = time.perf_counter() - t0
        if watch is not None:
            anon[name] = watch.stop()
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        memory[name] = hwm
    if log is not None:  # each stage's cost as it ends: readable while a long run goes on, or after it died
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(json.dumps({"stage": name, "seconds": seconds[name], "driver_peak_mb": memory.get(name),
                                "driver_anon_peak_mb": (anon or {}).get(name), "pid": os.getpid(),
                                "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}) + "\n")


# ---------------------------------------------------------------------------------------------- actors
class EmbedWorker:
    """Embeds chunks and writes one shard per chunk (skipping any already written)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.embedder = None
        self.done = 0

    def _embedder(self):
        if self.embedder is None:
            from dqwidgets.compute.device import resolve_device
            from dqwidgets.embed.resolve import resolve_embedder

            self.device = resolve_device("auto")
            self.embedder = resolve_embedder(self.spec["embedder"], self.spec["modality"])
        return self.embedder

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import ray

        spec = self.spec
        out = []
        for _, row in batch.iterrows():
            c = int(row["chunk"])
            path = Path(spec["dir"]) / f"part-{c:05d}.parquet"
            if not path.exists():
                rows = np.arange(int(row["start"]), int(row["stop"]), dtype=np.int64)
                if spec["modality"] == "embedding":
                    if spec.get("parquet") is not None:
                        X = spec["parquet"].read_file(int(row["file"]), json.loads(row["row_groups"]))
                    else:
                        X = ray.get(spec["refs"][c])
                    table = st.embed_table(rows, X)
                else:
                    values = ray.get(spec["refs"][c])
                    embedder = self._embedder()
                    if self.device.type == "cpu":  # per calling thread (see KnnWorker)
                        set_threads(spec["threads"])
                    X, reasons, hashes, props, names, sigs = st.embed_chunk(values, spec["modality"],
                                                                            embedder, self.device,
                                                                            spec["root"], None)
                    table = st.embed_table(rows, X, reasons, hashes, props, names, sigs)
                if spec.get("sample_share", 1.0) < 1.0:  # the fit sample's rows, set aside first
                    st.write_atomic(st.sample_table(table, spec["sample_share"]),
                                    st.sample_dir(spec["dir"], spec["sample_share"]) / path.name)
                st.write_atomic(table, path)
                self.done += 1
            out.append({"chunk": c})
        return pd.DataFrame(out)


def _todo_shards(batch: pd.DataFrame, spec: dict, vpos: np.ndarray):
    """(chunk, output path, valid rows' embeddings, their rows, their valid positions) of each chunk
    of the batch whose output shard is not written yet."""
    for c in batch["chunk"].tolist():
        path = Path(spec["dir"]) / f"part-{int(c):05d}.parquet"
        if path.exists():
            continue
        t = st.read_columns(Path(spec["embed_dir"]) / f"part-{int(c):05d}.parquet", ["row", "emb"])
        rows = t.column("row").to_numpy()
        keep = vpos[rows] >= 0
        yield c, path, st.read_matrix(t, "emb")[keep], rows[keep], vpos[rows[keep]]


class KnnWorker:
    """Holds the index and searches shard after shard. Exact: every valid row, queried by the rows of
    each embed shard. IVF: the valid rows in cell order (a memory-mapped file) and each cell's probed
    cells; a shard is a run of whole cells, each cell's members searched exactly among the members of
    its probed cells (``compute.knn._Cells``, the local engine's IVF search)."""

    def __init__(self, spec: dict):
        import torch

        self.spec = spec
        self.threads = set_threads(spec["threads"])  # torch search threads
        self.vpos = spec["vpos"]  # row -> valid position (-1 = left out)
        if spec["method"] == "ivf":
            from dqwidgets.compute.knn import _Cells

            with np.load(spec["cells"]) as z:
                order, starts, counts = z["order"], z["starts"], z["counts"]
            C = torch.as_tensor(spec["centroids"])
            near = torch.topk(C @ C.T, int(spec["nprobe"]), dim=1).indices  # each cell's nearest, itself first
            # copy-on-write map: torch reads the sorted rows from the page cache, nothing is written back
            P = torch.from_numpy(np.load(spec["cells_X"], mmap_mode="c"))
            self.cells = _Cells(P, torch.as_tensor(order), starts.tolist(), counts.tolist(), near.tolist())
        elif spec["method"] == "exact":
            parts = []
            for p in spec["embed_shards"]:
                t = st.read_columns(Path(p), ["row", "emb"])
                rows = t.column("row").to_numpy()
                keep = self.vpos[rows] >= 0
                parts.append(st.normalise(st.read_matrix(t, "emb")[keep]))
            self.R = torch.as_tensor(np.concatenate(parts))

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        spec = self.spec
        set_threads(self.threads)  # OpenMP's thread count is per calling thread: Ray may call from another
        if spec["method"] == "ivf":
            for _, item in batch.iterrows():
                path = Path(spec["dir"]) / f"part-{int(item['chunk']):05d}.parquet"
                if not path.exists():
                    self._cells(int(item["first"]), int(item["stop"]), path)
        else:
            for c, path, X, rows, vrows in _todo_shards(batch, spec, self.vpos):
                self._write(path, vrows, *st.knn_exact(st.normalise(X), vrows, self.R, spec["k"]))
        return pd.DataFrame({"chunk": batch["chunk"].tolist()})

    def _cells(self, first: int, stop: int, path: Path) -> None:
        import torch

        parts = [self.cells.neighbours(c, self.spec["k"], "cosine") for c in range(first, stop)]
        parts = [p for p in parts if p is not None]
        if not parts:
            vrows, idx, dist = np.zeros(0, np.int64), np.zeros((0, self.spec["k"]), np.int64), \
                np.zeros((0, self.spec["k"]), np.float32)
        else:
            vrows, idx, dist = (torch.cat([p[j] for p in parts]).numpy() for j in range(3))
        self._write(path, vrows.astype(np.int64), idx.astype(np.int64), dist.astype(np.float32))

    def _write(self, path, vrows, idx, dist) -> None:
        import pyarrow as pa
        import torch

        st.write_atomic(pa.table({"vrow": pa.array(vrows), "nbr": st.matrix_column(idx),
                                  "dist": st.matrix_column(dist)}), path,
                        {"search_threads": int(torch.get_num_threads())})


class ScoreWorker:
    """First score pass: per-row scores and per-shard statistics from an embedding and a kNN shard."""

    def __init__(self, spec: dict):
        import ray

        self.spec = spec
        set_threads(spec["threads"])
        self.model = ray.get(spec["model"])
        self.vpos, self.fold = spec["vpos"], spec["fold"]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import pyarrow as pa

        spec = self.spec
        set_threads(spec["threads"])
        # the graph as assembled (memory-mapped): the IVF kNN shards are runs of cells, not of rows
        nbr, dist = np.load(spec["graph"]["indices"], mmap_mode="r"), np.load(spec["graph"]["distances"], mmap_mode="r")
        for c, path, X, rows, vrows in _todo_shards(batch, spec, self.vpos):
            cols = st.score_shard(self.model, X, vrows, self.fold[rows], np.asarray(nbr[vrows]),
                                  np.asarray(dist[vrows]))
            table = {"row": pa.array(rows)}
            for name, v in cols.items():
                table[name] = st.matrix_column(v) if v.ndim == 2 else pa.array(v)
            st.write_atomic(pa.table(table), path)
        return pd.DataFrame({"chunk": batch["chunk"].tolist()})


def _sample_task(path: str, share: float, vpos: np.ndarray):
    """The valid rows of one shard (a set-aside sample shard, or an embed shard when there is none)
    whose sample key is below ``share``: (rows, embeddings, rows read)."""
    t = st.read_columns(Path(path), ["row", "emb"])
    rows = t.column("row").to_numpy()
    keep = (st.sample_key(rows) < share) & (vpos[rows] >= 0)
    return rows[keep], st.read_matrix(t, "emb")[keep], len(rows)


def _read_fit_sample(ray, embed_stage: st.Stage, shards: list, vpos: np.ndarray, n: int, m: int):
    """The fit sample: the ``m`` valid rows of the smallest sample keys (``stages.sample_key``), sorted
    by row, with their embeddings; read from the rows the embed stage set aside (a share of about
    1.1 m / N of the embeddings), or, for embed shards written without them, from every shard.
    Returns (rows, X, rows of embeddings read)."""
    share = st.sample_share(m, n)
    sources = [str(st.sample_source(embed_stage.path, Path(p), share)) if share < 1.0 else p for p in shards]
    vref = ray.put(vpos)
    got = ray.get([ray.remote(_sample_task).remote(p, share, vref) for p in sources])
    rows = np.concatenate([g[0] for g in got])
    X = np.concatenate([g[1] for g in got]).astype(np.float32, copy=False)
    read = int(sum(g[2] for g in got))
    del got
    keep = st.smallest(st.sample_key(rows), m)
    rows, X = rows[keep], X[keep]
    order = np.argsort(rows, kind="stable")
    return rows[order], X[order], read


def _cells_task(centroids, shards, vpos, nv: int, out: str, queries, q_vrows, k: int, threads: int):
    """The IVF cells of the valid rows, in two scans of the embed shards: each row's cell (its nearest
    centroid), then the normalised rows written in cell order to ``out + "_X.npy"`` (memory-mapped by
    the kNN actors). On the second scan the exact k nearest neighbours of the sample ``queries``
    (normalised, valid positions ``q_vrows``) are gathered too, to choose nprobe. Writes ``out + ".npz"``
    (order = valid position of each sorted row, starts, counts, the cells, the queries' exact neighbours)."""
    import torch

    set_threads(threads)
    C = torch.as_tensor(centroids)
    cell = np.empty(nv, dtype=np.int64)
    for p in shards:
        t = st.read_columns(Path(p), ["row", "emb"])
        rows = t.column("row").to_numpy()
        keep = vpos[rows] >= 0
        P = torch.as_tensor(st.normalise(st.read_matrix(t, "emb")[keep]))
        cell[vpos[rows[keep]]] = torch.cat([(P[s:s + 16384] @ C.T).argmax(1) for s in range(0, len(P), 16384)]).numpy()
    counts = np.bincount(cell, minlength=len(C))
    starts = np.cumsum(counts) - counts
    order = np.argsort(cell, kind="stable")
    where = np.empty(nv, dtype=np.int64)
    where[order] = np.arange(nv)
    X = np.lib.format.open_memmap(out + "_X.tmp.npy", mode="w+", dtype=np.float32, shape=(nv, C.shape[1]))
    Q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    best_s = torch.full((len(Q), k + 1), -float("inf"))
    best_i = torch.full((len(Q), k + 1), -1, dtype=torch.int64)
    for p in shards:
        t = st.read_columns(Path(p), ["row", "emb"])
        rows = t.column("row").to_numpy()
        keep = vpos[rows] >= 0
        P = st.normalise(st.read_matrix(t, "emb")[keep])
        v = vpos[rows[keep]]
        X[where[v]] = P
        if len(P):  # the queries' exact top k+1 so far (themselves among them)
            sim = torch.cat([best_s, Q @ torch.as_tensor(P).T], 1)
            ids = torch.cat([best_i, torch.as_tensor(v).expand(len(Q), -1)], 1)
            best_s, top = torch.topk(sim, min(k + 1, sim.shape[1]), dim=1)
            best_i = torch.gather(ids, 1, top)
    X.flush()
    del X
    exact, _ = st.without_self(best_i.numpy(), 1.0 - best_s.numpy(), np.asarray(q_vrows, dtype=np.int64))
    np.savez(out + ".tmp.npz", order=order, starts=starts, counts=counts, cell=cell, query_vrows=q_vrows,
             query_exact=exact)
    os.replace(out + "_X.tmp.npy", out + "_X.npy")
    os.replace(out + ".tmp.npz", out + ".npz")
    return out


def _cell_chunks(counts: np.ndarray, chunk_rows: int) -> list[dict]:
    """The IVF kNN pass' items: runs of whole cells of about ``chunk_rows`` rows each."""
    out, first, rows = [], 0, 0
    for c, m in enumerate(counts.tolist()):
        rows += m
        if rows >= chunk_rows or c == len(counts) - 1:
            out.append({"chunk": len(out), "first": first, "stop": c + 1})
            first, rows = c + 1, 0
    return out


def _ivf_cells(ray, knn_stage: st.Stage, fitted: dict, shards, vpos, nv: int, k: int, opt: dict, seed: int):
    """The IVF cells (``_cells_task``, once) and the nprobe of the kNN pass: ``nprobe="auto"`` = the
    fewest probed cells at which the pass finds ``knn_recall`` of the exact neighbours of up to 1,000
    queries of the fit sample (``compute.knn.cells_for_recall``). Returns (cells file stem, info)."""
    from dqwidgets.compute.knn import cells_for_recall

    out = str(knn_stage.file("cells"))
    if not os.path.exists(out + ".npz"):
        A, a_rows = fitted["anchor_X"], fitted["anchor_rows"]
        pick = np.sort(np.random.default_rng(seed + 2).permutation(len(A))[:1000])
        size = _actor_pool(ray, opt["actors"], False)
        ray.get(ray.remote(_cells_task).remote(fitted["centroids"], shards, vpos, nv, out, st.normalise(A[pick]),
                                              a_rows[pick], k, _threads(ray, size)))
    with np.load(out + ".npz") as z:
        counts, cell, q, exact = z["counts"], z["cell"], z["query_vrows"], z["query_exact"]
    target = float(opt["knn_recall"])
    nprobe, recall = cells_for_recall(cell[q], cell[exact], fitted["centroids"], target,
                                      None if opt["nprobe"] == "auto" else int(opt["nprobe"]))
    # what a query scans: its cell's probed cells' members
    size = np.sort(counts)[::-1]
    info = {"cells": int(len(counts)), "nprobe": int(nprobe), "sample_recall": float(recall),
            "target_recall": target, "queries": int(len(q)),
            "candidates_per_query_max": int(size[:nprobe].sum())}
    return out, counts, info


def _assemble_task(shards, column: str, index_column: str, n: int, width: int, out: str, fill, dtype):
    """Write one N x width ``.npy`` (memory-mapped by the driver) from the shards' ``column``."""
    arr = np.lib.format.open_memmap(out + ".tmp.npy", mode="w+", dtype=dtype, shape=(n, width))
    arr[:] = fill
    for p in shards:
        t = st.read_columns(Path(p), [index_column, column])
        arr[t.column(index_column).to_numpy()] = st.read_matrix(t, column)
    arr.flush()
    del arr
    os.replace(out + ".tmp.npy", out)
    return out


# ---------------------------------------------------------------------------------------------- chunks
def _chunks(ds, n: int, chunk_rows: int) -> list[dict]:
    feats = ds.features
    from dqwidgets.engine.parquet import ParquetFeatures

    if isinstance(feats, ParquetFeatures):
        import pyarrow.parquet as pq

        from dqwidgets.engine.parquet import open_file

        out, start = [], 0
        for fi, name in enumerate(feats.files):
            md = pq.ParquetFile(open_file(name)).metadata
            group, rows = [], 0
            for g in range(md.num_row_groups):
                group.append(g)
                rows += md.row_group(g).num_rows
                if rows >= chunk_rows or g == md.num_row_groups - 1:
                    out.append({"chunk": len(out), "start": start, "stop": start + rows, "file": fi,
                                "row_groups": json.dumps(group)})
                    start, group, rows = start + rows, [], 0
        return out
    return [{"chunk": i, "start": s, "stop": min(n, s + chunk_rows), "file": -1, "row_groups": "[]"}
            for i, s in enumerate(range(0, n, chunk_rows))]


def _rows(chunks: list) -> int:
    return int(sum(c["stop"] - c["start"] for c in chunks))


def _array_key(a) -> str | None:
    """A digest of the user's N x C probabilities (the fit and score stages depend on them)."""
    return None if a is None else hashlib.sha1(np.ascontiguousarray(a).view(np.uint8)).hexdigest()


def _run_key(**parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _embedder_key(ds, embedder) -> str:
    if ds.modality == "embedding":
        from dqwidgets.engine.parquet import ParquetFeatures

        f = ds.features
        return f"parquet:{f.files}:{f.column}" if isinstance(f, ParquetFeatures) else "arrays"
    if isinstance(embedder, str):
        return embedder
    return f"{getattr(embedder, 'name', type(embedder).__name__)}@{getattr(embedder, 'version', None)}"


# ---------------------------------------------------------------------------------------------- main
def analyze_ray(ds, embedder="auto", pred_probs=None, logits=None, device="auto", k: int = 15, workdir=None,
                reference=None, layout: str = "umap", wait_layout: bool = True, progress: bool = True,
                seed: int = 0, thresholds: dict | None = None, training=None, **options):
    """See ``dqwidgets.analyze``; ``options`` (``engine_options=``): chunk_rows, fit_sample,
    layout_sample, exact_max, nprobe, knn ("auto" | "exact" | "ivf"), address, num_cpus, actors, pool
    ("auto" | "actors" | "tasks": how the passes run, see ``_use_actors``)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"analyze(engine='ray'): unknown engine_options {unknown}; known: {sorted(DEFAULTS)}")
    opt = {**DEFAULTS, **options}
    from dqwidgets.analysis import LAYOUTS, _check_thresholds

    if layout not in LAYOUTS:
        raise ValueError(f"analyze: layout must be one of {LAYOUTS}, got {layout!r}")
    chosen = _check_thresholds(thresholds)
    if reference is not None:
        raise ValueError("analyze(engine='ray'): reference= is not supported by the Ray engine: scoring a batch "
                         "against a reference needs the reference's embeddings in every worker. Use "
                         "engine='local' for reference= batches (the reference itself may come from either engine)")
    if opt["pool"] not in ("auto", "actors", "tasks"):
        raise ValueError(f"analyze(engine='ray'): pool must be 'auto', 'actors' or 'tasks', got {opt['pool']!r}")
    if opt["knn"] not in ("auto", "exact", "ivf"):
        raise ValueError(f"analyze(engine='ray'): knn must be 'auto', 'exact' or 'ivf', got {opt['knn']!r}")
    n = check_dataset(ds)
    if any(v is not None for v in (pred_probs, logits, getattr(ds, "pred_probs", None), getattr(ds, "logits", None))):
        from dqwidgets.analysis_input import _labels, _user_probabilities

        _user_probabilities(ds, pred_probs, logits, n, _labels(ds, None)[2])  # a wrong shape fails before any pass
    ray = connect(opt["address"], opt["num_cpus"])
    if ds.modality == "tabular":
        raise ValueError("analyze(engine='ray'): tables are encoded in one process; use engine='local', or "
                         "pass the encoded features with Dataset.from_arrays / from_parquet(features=...)")
    workdir = Path(workdir) if workdir is not None else Path.cwd() / ".dqwidgets"
    seconds: dict = {}
    memory: dict = {}
    anon: dict = {}
    gpu = ray.cluster_resources().get("GPU", 0) > 0
    # v: the embed shard's columns (2: with the near-copy signatures of images and texts)
    emb_key = _run_key(e=_embedder_key(ds, embedder), n=n, chunk=opt["chunk_rows"], v=2)
    base = workdir / ds.fingerprint / "ray"
    stage_log = base / "stages.jsonl"
    embed_stage = st.Stage(base, f"embed-{emb_key}")
    chunks = _chunks(ds, n, opt["chunk_rows"])

    # ------------------------------------------------------------------ 1. embed
    with _stage("embed", seconds, memory, anon, stage_log):
        if embed_stage.done() is None:
            todo = [c for c in chunks if c["chunk"] not in embed_stage.written()]
            spec = {"dir": str(embed_stage.path), "modality": ds.modality, "embedder": embedder,
                    "root": ds.root, "parquet": None, "refs": {},
                    "sample_share": st.sample_share(opt["fit_sample"], n)}
            from dqwidgets.engine.parquet import ParquetFeatures

            if ds.modality == "embedding" and isinstance(ds.features, ParquetFeatures):
                spec["parquet"] = ds.features
            else:
                src = ds.features if ds.modality == "embedding" else ds.frame[ds.image or ds.text].to_numpy(object)
                if ds.modality == "embedding":
                    src = np.asarray(src)
                    if src.ndim != 2 or len(src) != n:
                        raise ValueError(f"analyze: features must be N x D with N={n}, got shape {src.shape}")
                spec["refs"] = {c["chunk"]: ray.put(src[c["start"]:c["stop"]]) for c in todo}
            embed_stage.path.mkdir(parents=True, exist_ok=True)
            on_gpu = gpu and ds.modality != "embedding"  # precomputed embeddings are only read
            size = _actor_pool(ray, opt["actors"], on_gpu)
            spec["threads"] = _threads(ray, size)
            _run_pass(ray, todo, EmbedWorker, {"spec": spec}, size, on_gpu,
                      _use_actors(opt["pool"], ds.modality != "embedding", n, on_gpu))
            missing = sorted({c["chunk"] for c in chunks} - embed_stage.written())
            if missing:
                raise RuntimeError(f"analyze(engine='ray'): embedding shards {missing[:5]} were not written")
            embed_stage.mark_done({"chunks": len(chunks), "computed": len(todo), "n": n,
                                   "sample_share": spec["sample_share"],
                                   "embedder": _embedder_key(ds, embedder)})
    shards = [str(embed_stage.shard(c["chunk"])) for c in chunks]

    # ------------------------------------------------------------------ validity, labels, folds (1-D)
    with _stage("validate", seconds, memory, anon, stage_log):
        schema = _schema(shards[0])
        side_columns = [c for c in schema.names if c not in st.MATRIX_COLUMNS]
        side = [st.read_columns(Path(p), side_columns).to_pandas() for p in shards]
        side = pd.concat(side, ignore_index=True).sort_values("row").reset_index(drop=True)
        dim = schema.field("emb").type.list_size
        inp = _input(ds, side, n, k, None, pred_probs, logits)
        user_probs = inp.pred_probs is not None  # the user's model: no probe is fitted
        valid = inp.valid
        vpos = np.full(n, -1, dtype=np.int64)
        pos = np.flatnonzero(valid)
        vpos[pos] = np.arange(len(pos))
        codes_v = inp.label_codes[pos]
        fold_hash = st.fold_of(inp.ids)
        labelled_v = codes_v >= 0
        n_classes = len(inp.classes)
        folds = 0
        if not user_probs and labelled_v.sum() and len(np.unique(codes_v[labelled_v])) >= 2:
            counts = np.bincount(codes_v[labelled_v], minlength=n_classes)
            folds = 5 if labelled_v.sum() < 20_000 else 3
            folds = int(max(2, min(folds, counts[counts > 0].min())))
        fold = (fold_hash % max(folds, 1)).astype(np.int64)
        fold[inp.label_codes < 0] = 0  # unlabelled rows are predicted by the first fold's model
        del side, fold_hash
    run_key = _run_key(e=emb_key, k=k, seed=seed, layout=layout, v=5, probs=_array_key(inp.pred_probs),
                       **{o: opt[o] for o in ("fit_sample", "layout_sample", "exact_max", "nprobe", "knn",
                                              "knn_recall")})
    run_dir = base / f"run-{run_key}"

    # ------------------------------------------------------------------ 2. fit on a sample
    fit_stage = st.Stage(run_dir, "fit")
    rng = np.random.default_rng(seed)
    nv = len(pos)
    method = opt["knn"]
    if method == "auto":
        method = "exact" if nv <= opt["exact_max"] else "ivf"
    with _stage("fit", seconds, memory, anon, stage_log):
        if fit_stage.done() is not None:
            fitted = _load_pickle(fit_stage.file("fit.pkl"))
            _sample_folds(fold, fitted["sample_rows"], inp.label_codes, folds, seed)
        else:
            s_rows, Xs, read = _read_fit_sample(ray, embed_stage, shards, vpos, n, opt["fit_sample"])
            _sample_folds(fold, s_rows, inp.label_codes, folds, seed)
            correct = inp.pred_probs[s_rows].argmax(1) == inp.label_codes[s_rows] if user_probs else None
            fitted = _fit(Xs, vpos[s_rows], codes_v, fold[s_rows], n_classes, folds, seed, opt, method, correct)
            m = min(len(Xs), opt["layout_sample"])  # the layout's anchors: a sub-sample of the fit sample
            pick = np.sort(np.random.default_rng(seed + 1).permutation(len(Xs))[:m])
            fitted["anchor_X"], fitted["anchor_rows"] = Xs[pick], vpos[s_rows][pick]
            fitted["sample_rows"], fitted["rows_read"] = s_rows, read
            del Xs
            _save_pickle(fit_stage, "fit.pkl", fitted)
    # embeddings read by the stages that compute scores (fit + score pass), in scans of all N rows
    scans = {"fit": fitted["rows_read"] / n}

    # ------------------------------------------------------------------ 3. kNN graph
    knn_stage = st.Stage(run_dir, "knn")
    with _stage("knn", seconds, memory, anon, stage_log):
        if knn_stage.done() is None:
            knn_stage.path.mkdir(parents=True, exist_ok=True)
            spec = {"dir": str(knn_stage.path), "embed_dir": str(embed_stage.path), "k": k, "method": method,
                    "vpos": vpos, "embed_shards": shards}
            items, ivf = chunks, {}
            if method == "ivf":
                cells, counts, ivf = _ivf_cells(ray, knn_stage, fitted, shards, vpos, nv, k, opt, seed)
                spec.update({"cells": cells + ".npz", "cells_X": cells + "_X.npy", "nprobe": ivf["nprobe"],
                             "centroids": fitted["centroids"], "vpos": None, "embed_shards": None})
                items = _cell_chunks(counts, opt["chunk_rows"])
            todo = [c for c in items if c["chunk"] not in knn_stage.written()]
            size = _actor_pool(ray, opt["actors"], False)
            spec["threads"] = _threads(ray, size)
            _run_pass(ray, todo, KnnWorker, {"spec": spec}, size, False, _use_actors(opt["pool"], True, nv, False))
            knn_stage.mark_done({"method": method, "chunks": len(items), **ivf})
        knn_info = knn_stage.done()
        knn_shards = [str(knn_stage.shard(c)) for c in range(knn_info["chunks"])]
        nn1 = np.empty(nv, dtype=np.float32)
        for p in knn_shards:
            t = st.read_columns(Path(p), ["vrow", "dist"])
            nn1[t.column("vrow").to_numpy()] = st.read_matrix(t, "dist")[:, 0]
    from dqwidgets.compute.duplicates import typical_nn_distance

    typical = typical_nn_distance(nn1[:, None], "cosine")
    signatures = _assemble_signatures(ray, base, shards, n) if "sig" in schema.names else None
    # precomputed features are the user's cells (a table's columns, or an embedding): compared per pair too
    cells = _assemble_features(ray, run_dir, shards, n, dim) if features_are_cells(ds) else None
    graph_files = _assemble(ray, run_dir, knn_shards, nv, k, signatures, pos, cells)

    # ------------------------------------------------------------------ layout anchors (UMAP on a sample)
    layout_stage = st.Stage(run_dir, "layout")
    with _stage("layout_fit", seconds, memory, anon, stage_log):
        anchors = anchor_rows = anchor_xy = None
        if layout in ("umap", "umap-learn"):   # the anchors' UMAP (umap-learn) placed for every row
            if layout_stage.done() is None:
                _save_pickle(layout_stage, "anchors.pkl",
                             _fit_layout(fitted["anchor_X"], fitted["anchor_rows"], nv, graph_files, fitted, seed, k))
            anchor_rows, anchors, anchor_xy = _load_pickle(layout_stage.file("anchors.pkl"))
    model = st.Model(n_classes=n_classes, folds=folds, probe=fitted["probe"],
                     gaussians=fitted["gaussians"], pca_mean=fitted["pca_mean"], pca_axes=fitted["pca_axes"],
                     anchors=anchors, anchor_rows=anchor_rows, anchor_xy=anchor_xy,
                     k=k, probe_l2=fitted.get("probe_l2"), region_probe=fitted.get("region_probe"))

    # ------------------------------------------------------------------ 4. score passes
    score_stage = st.Stage(run_dir, "score")
    with _stage("score", seconds, memory, anon, stage_log):
        if score_stage.done() is None:
            score_stage.path.mkdir(parents=True, exist_ok=True)
            spec = {"dir": str(score_stage.path), "embed_dir": str(embed_stage.path), "graph": graph_files,
                    "model": ray.put(model), "vpos": vpos, "fold": fold}
            todo = [c for c in chunks if c["chunk"] not in score_stage.written()]
            scans["score"] = _rows(todo) / n
            size = _actor_pool(ray, opt["actors"], False)
            spec["threads"] = _threads(ray, size)
            _run_pass(ray, todo, ScoreWorker, {"spec": spec}, size, False, _use_actors(opt["pool"], False, nv, False))
            score_stage.mark_done({"chunks": len(chunks)})
        score_shards = [str(score_stage.shard(c["chunk"])) for c in chunks]
        cols = _read_scores(score_shards, nv, model)
    with _stage("assemble", seconds, memory, anon, stage_log):
        probs_file = _assemble_probs(ray, run_dir, score_shards, n, nv, n_classes) if model.probe is not None \
            else None
        region_file = _assemble_region_probs(ray, run_dir, score_shards, nv, n_classes) \
            if model.region_probe is not None else None
        features_file = _assemble_features(ray, run_dir, shards, n, dim)
        an = _build(ds, inp, pos, cols, model, typical, graph_files, probs_file, region_file, features_file,
                    method, layout, seed, workdir, seconds, memory, opt, embed_stage, chosen, training)
    an.info["embedding_scans"] = scans
    an.info["knn"] = knn_info  # IVF: cells, nprobe, the recall measured on the sample queries
    an.info["driver_anon_peak_mb"] = anon
    return an


# ---------------------------------------------------------------------------------------------- pieces
def _input(ds, side: pd.DataFrame, n: int, k: int, reference, pred_probs=None, logits=None):
    """The same AnalysisInput the local engine builds, from the embed shards' side columns (reasons,
    hashes, properties) instead of an in-memory embedding."""
    from dqwidgets.analysis_input import AnalysisInput, _codes, _empty_flags, _encode_attribute, _labels, \
        _user_probabilities

    ids = ds.frame.index
    flags = _empty_flags(ids)
    reasons = side["reason"].fillna("").to_numpy(object)
    labels, codes, classes = _labels(ds, reference)
    probs, lg = _user_probabilities(ds, pred_probs, logits, n, classes)  # checked as the local engine does
    if ds.modality in ("image", "text"):
        flags["is_unreadable" if ds.modality == "image" else "is_empty"] = reasons != ""
        unl = ds.labels.isna().to_numpy() if ds.labels is not None else np.zeros(n, bool)
        why = [[r] if r else [] for r in reasons]
        for w, u in zip(why, unl):
            if u:
                w.append("missing label")
        flags["invalid_reason"] = ["; ".join(w) for w in why]
        flags["is_invalid"] = flags["invalid_reason"].to_numpy() != ""
    else:
        bad = reasons != ""
        flags.loc[bad, "is_invalid"] = True
        flags.loc[bad, "invalid_reason"] = "features contain NaN or inf"
    flags["is_unlabeled"] = flags["is_unlabeled"].to_numpy() | (codes < 0)
    valid = ~flags["is_invalid"].to_numpy(dtype=bool)
    if int(valid.sum()) <= k:
        raise ValueError(f"analyze: {int(valid.sum())} valid samples but k={k} neighbours per sample; "
                         f"pass k={max(1, int(valid.sum()) - 1)} or fewer, or add samples")
    props = pd.DataFrame({c[5:]: side[c].to_numpy() for c in side.columns if c.startswith("prop:")}, index=ids)
    if "is_grayscale" in props:
        props["is_grayscale"] = props["is_grayscale"].map({1.0: True, 0.0: False}).astype("boolean")
    splits = ds.splits.to_numpy(dtype=object) if getattr(ds, "split", None) else None
    split_codes = split_names = None
    if splits is not None:
        split_codes, split_names = _codes(splits)
    hashes = None
    if "hash" in side:
        hashes = side["hash"].to_numpy(object)
    elif ds.modality == "text":
        hashes = ds.content_hashes()
    meta = ds.metadata.reset_index(drop=True)
    extra = pd.concat([meta, props.reset_index(drop=True).drop(columns=[c for c in props.columns
                                                                         if c in meta.columns])], axis=1)
    attributes = {str(c): _encode_attribute(extra[c].to_numpy()) for c in extra.columns}
    text_sigs = None
    if "tsig" in side:  # the embed actors' normalised-text hashes
        text_sigs = side["tsig"].to_numpy(object)
        text_sigs[pd.isna(text_sigs)] = None
    elif ds.modality == "text":
        from dqwidgets.analysis_input import _text_signatures

        text_sigs = _text_signatures(ds)
    from dqwidgets.analysis_input import text_surface

    return AnalysisInput(ids, np.zeros((n, 0), np.float32), valid, flags, labels, codes, classes, splits,
                         split_codes, split_names, probs, lg, hashes, attributes, extra, "",
                         text_signatures=text_sigs, text_surface=text_surface(ds))


def _sample_folds(fold: np.ndarray, s_rows: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> None:
    """The probe is fitted on the sample: its labelled rows get stratified folds (compute.probe.fold_ids,
    the local engine's folds, the same for the same seed when the sample is every valid row); every
    other row keeps the fold of its id's hash (each fold model is out of fold for a row outside it)."""
    if not folds:
        return
    from dqwidgets.compute.probe import fold_ids

    lab = s_rows[codes[s_rows] >= 0]
    fold[lab] = fold_ids(codes[lab], folds, seed)


def _fit(Xs, s_vrows, codes_v, s_fold, n_classes, folds, seed, opt, method, correct=None) -> dict:
    """Everything fitted on the sample: probe per fold, class Gaussians, PCA axes, IVF centroids."""
    import torch

    from dqwidgets.analysis import ood_gaussians
    from dqwidgets.compute.device import cpu_threads_for
    from dqwidgets.compute.probe import (L2_PATH, choose_on_folds, fit_softmax_regression, over_parameterised,
                                         path_fits)

    out: dict = {"probe": None, "gaussians": None, "probe_l2": None}
    y = codes_v[s_vrows]
    if folds:
        Xt, yt = torch.as_tensor(Xs), torch.as_tensor(y)
        f_t = torch.as_tensor(s_fold)
        torch.manual_seed(seed)
        probe = []
        logits = np.zeros((len(Xs), n_classes), np.float32)

        def standardised(f):
            train = (f_t != f) & (yt >= 0)
            return train, Xt[train].mean(0), Xt[train].std(0).clamp_min(1e-6)

        # the L2 penalty by the local engine's rule (compute.probe.out_of_fold_probs): searched only where
        # the probe has as many weights as training rows; fold 0 first, every fold when it is undecided
        path = L2_PATH if over_parameterised(int(standardised(0)[0].sum()), Xs.shape[1], n_classes) \
            else (min(L2_PATH),)
        fits, pick = {}, 0
        if len(path) > 1:
            def run_path(f):
                train, mean, std = standardised(f)
                held = (f_t == f) & (yt >= 0)
                fits[f], hits = path_fits((Xt[train] - mean) / std, yt[train], (Xt[held] - mean) / std, yt[held],
                                          n_classes, path)
                return hits

            pick, _ = choose_on_folds(run_path, folds, int((yt >= 0).sum()))
        out["probe_l2"] = path[pick]
        for f in range(folds):
            train, mean, std = standardised(f)
            if f in fits:
                _, W, b = fits[f][pick]
            else:
                with cpu_threads_for(int(train.sum()) * Xs.shape[1] * n_classes, torch.device("cpu")):
                    W, b = fit_softmax_regression((Xt[train] - mean) / std, yt[train], n_classes, out["probe_l2"])
            probe.append((mean.numpy(), std.numpy(), W.numpy(), b.numpy()))
            m = (s_fold == f)
            logits[m] = ((Xs[m] - probe[-1][0]) / probe[-1][1]) @ probe[-1][2] + probe[-1][3]
        out["probe"] = probe
        correct = logits.argmax(1) == y
        weakest = min(L2_PATH)
        if out["probe_l2"] != weakest:  # what the foreign-region search reads (analysis._probabilities)
            region = []
            for f in range(folds):
                train, mean, std = standardised(f)
                with cpu_threads_for(int(train.sum()) * Xs.shape[1] * n_classes, torch.device("cpu")):
                    W, b = fit_softmax_regression((Xt[train] - mean) / std, yt[train], n_classes, weakest)
                region.append((mean.numpy(), std.numpy(), W.numpy(), b.numpy()))
            out["region_probe"] = region
    out["gaussians"] = ood_gaussians(Xs, y, correct, n_classes, "cpu")  # the local engine's rule
    Xc = torch.as_tensor(Xs) - torch.as_tensor(Xs).mean(0)
    torch.manual_seed(seed)
    q = min(2, Xs.shape[1])
    if min(Xc.shape) > 10:
        _, _, V = torch.pca_lowrank(Xc, q=q + 4, center=False, niter=3)
        axes = V[:, :q].numpy()
    else:
        axes = torch.linalg.svd(Xc, full_matrices=False)[2][:q].T.numpy()
    if q < 2:
        axes = np.hstack([axes, np.zeros((Xs.shape[1], 2 - q), np.float32)])
    out["pca_mean"], out["pca_axes"] = Xs.mean(0), axes.astype(np.float32)
    if method == "ivf":
        from dqwidgets.compute.knn import _kmeans

        from dqwidgets.compute.knn import ivf_parameters

        # the local engine's cell count for N (2 sqrt(N)), at most one cell per 39 rows of the sample
        n_cells = int(max(8, min(ivf_parameters(len(codes_v))[0], len(Xs) // 39)))
        out["centroids"] = _kmeans(torch.as_tensor(st.normalise(Xs)), n_cells, seed, iters=10).numpy() \
            .astype(np.float32)
    return out


def _edges_task(distances: str, indices: str, signatures: str | None, pos, out: str, cells: str | None = None):
    """The local engine's duplicate step on the graph (``compute.duplicates.near_copy_edges``): every
    edge's closeness on its sample's own scale, the data-driven default threshold and, for images, the
    closeness raised where the pair's thumbnails match plus the signature pairs beyond the graph; for
    precomputed features (``cells``: the N x D features file, read in blocks), where the pair differs in
    few cells. Writes the edges (valid x k, memory-mapped by the driver) and ``<out>.npz`` (threshold,
    extra pairs)."""
    from dqwidgets.compute.duplicates import near_copy_edges

    d = np.load(distances, mmap_mode="r")
    sigs = None
    if signatures is not None:
        sigs = np.asarray(np.load(signatures, mmap_mode="r")[np.asarray(pos)])  # valid x SIGNATURE_BYTES
    X = None if cells is None else np.load(cells, mmap_mode="r")
    edges, threshold, pairs = near_copy_edges(np.asarray(d), "cosine", np.load(indices, mmap_mode="r"), sigs,
                                              X, None if X is None else np.asarray(pos))
    empty = np.zeros(0, np.int64)
    rows, cols, close = pairs if pairs is not None else (empty, empty, np.zeros(0, np.float32))
    np.savez(out + ".tmp.npz", threshold=np.float64(threshold), rows=rows, cols=cols, close=close,
             has_pairs=pairs is not None)
    arr = np.lib.format.open_memmap(out + ".tmp.npy", mode="w+", dtype=np.float32, shape=d.shape)
    arr[:] = edges
    arr.flush()
    del arr
    os.replace(out + ".tmp.npz", out + ".npz")
    os.replace(out + ".tmp.npy", out)


def _load_edges(files: dict):
    """(edges valid x k memory-mapped, default threshold, extra signature pairs or None)."""
    with np.load(files["edges"] + ".npz") as z:
        pairs = (z["rows"], z["cols"], z["close"]) if bool(z["has_pairs"]) else None
        return np.load(files["edges"], mmap_mode="r"), float(z["threshold"]), pairs


def _assemble(ray, run_dir: Path, knn_shards, nv, k, signatures=None, pos=None, cells=None) -> dict:
    files = {"indices": str(run_dir / "graph_indices.npy"), "distances": str(run_dir / "graph_distances.npy"),
             "edges": str(run_dir / "duplicate_edges.npy")}
    task = ray.remote(_assemble_task)
    todo = []
    if not os.path.exists(files["indices"]):
        todo.append(task.remote(knn_shards, "nbr", "vrow", nv, k, files["indices"], 0, np.int64))
    if not os.path.exists(files["distances"]):
        todo.append(task.remote(knn_shards, "dist", "vrow", nv, k, files["distances"], 0.0, np.float32))
    ray.get(todo)
    if not (os.path.exists(files["edges"]) and os.path.exists(files["edges"] + ".npz")):
        ray.get(ray.remote(_edges_task).remote(files["distances"], files["indices"], signatures,
                                               None if signatures is None and cells is None else pos,
                                               files["edges"], cells))
    return files


def _assemble_signatures(ray, base: Path, shards, n) -> str:
    """The images' near-copy thumbnails (N x SIGNATURE_BYTES uint8) as one memory-mapped file, from the
    embed shards' ``sig`` column (written by a remote task; the driver never holds them)."""
    from dqwidgets.embed.signature import SIGNATURE_BYTES

    out = str(base / (Path(shards[0]).parent.name + "-signatures.npy"))
    if not os.path.exists(out):
        ray.get(ray.remote(_assemble_task).remote(shards, "sig", "row", n, SIGNATURE_BYTES, out, 0, np.uint8))
    return out


def _schema(path):
    import pyarrow.parquet as pq

    return pq.read_schema(path)


def _assemble_region_probs(ray, run_dir, score_shards, nv, c) -> str:
    """The foreign-region search's out-of-fold probabilities (the weakest penalty's probe; see
    analysis._probabilities) over the valid rows, a memory-mapped file written by a remote task."""
    out = str(run_dir / "region_probs_valid.npy")
    if not os.path.exists(out):
        ray.get(ray.remote(_assemble_task).remote(score_shards, "region_probs", "vrow", nv, c, out, np.nan, np.float32))
    return out


def _assemble_probs(ray, run_dir, score_shards, n, nv, c) -> tuple[str, str]:
    """The out-of-fold probabilities as two memory-mapped files written by remote tasks: N rows (NaN for
    invalid rows: the Analysis' ``pred_probs``) and the valid rows only (what the driver's steps read,
    so that they never copy an N x C matrix out of the full one)."""
    out, valid = str(run_dir / "probs.npy"), str(run_dir / "probs_valid.npy")
    task = ray.remote(_assemble_task)
    todo = []
    if not os.path.exists(out):
        todo.append(task.remote(score_shards, "probs", "row", n, c, out, np.nan, np.float32))
    if nv < n and not os.path.exists(valid):
        todo.append(task.remote(score_shards, "probs", "vrow", nv, c, valid, np.nan, np.float32))
    ray.get(todo)
    return out, (valid if nv < n else out)


def _assemble_features(ray, run_dir, shards, n, dim) -> str:
    out = str(run_dir.parent / (Path(shards[0]).parent.name + "-features.npy"))
    if not os.path.exists(out):
        ray.get(ray.remote(_assemble_task).remote(shards, "emb", "row", n, dim, out, 0.0, np.float32))
    return out


def _partitions_task(indices_file: str, resolutions, seed: int, out: str) -> str:
    """The Leiden partitions of the graph that the foreign-region and slice steps read
    (``compute.slices.partitions_of``), computed in a worker from the memory-mapped graph: the driver
    then never builds the igraph graph of N nodes (measured: ~1 GB of the driver's memory at 300k)."""
    from dqwidgets.compute.slices import partitions_of

    if not os.path.exists(out):
        parts = partitions_of(np.asarray(np.load(indices_file, mmap_mode="r")), resolutions, seed)
        np.savez(out + ".tmp.npz", resolutions=np.array([r for r, _ in parts]),
                 **{f"p{i}": m for i, m in enumerate(parts.values())})
        os.replace(out + ".tmp.npz", out)
    return out


def _load_partitions(path: str, seed: int) -> dict:
    with np.load(path) as z:
        return {(float(r), int(seed)): z[f"p{i}"] for i, r in enumerate(z["resolutions"])}


def _load_graph(files: dict):
    from dqwidgets.compute.knn import KnnGraph

    return KnnGraph(np.load(files["indices"], mmap_mode="r"), np.load(files["distances"], mmap_mode="r"), "cosine")


def _save_pickle(stage: st.Stage, name: str, obj) -> None:
    import pickle

    stage.path.mkdir(parents=True, exist_ok=True)
    tmp = stage.file(f".{name}.tmp")
    tmp.write_bytes(pickle.dumps(obj, protocol=5))
    os.replace(tmp, stage.file(name))
    stage.mark_done({"file": name})


def _load_pickle(path: Path):
    import pickle

    return pickle.loads(path.read_bytes())


def _fit_layout(A, rows, nv, graph_files, fitted, seed, k):
    """UMAP of the ``layout_sample`` anchors: on the analysis' own graph when every valid sample is an
    anchor, else on the exact kNN graph among the anchors; the score pass places the rest."""
    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.layout import umap_layout

    m = len(A)
    init = _scaled(((A - fitted["pca_mean"]) @ fitted["pca_axes"]).astype(np.float32))
    if m == nv:
        graph = _load_graph(graph_files)
        graph.indices, graph.distances = np.asarray(graph.indices), np.asarray(graph.distances)
    else:
        graph = knn_graph(A, min(k, m - 1), device="cpu", method="exact", seed=seed)
    xy = umap_layout(graph, init=init, seed=seed, features=A)
    return rows, st.normalise(A), xy.astype(np.float32)


def _scaled(Y: np.ndarray) -> np.ndarray:
    span = np.abs(Y).max() if len(Y) else 0
    return (Y * (10.0 / span if span > 0 else 1.0)).astype(np.float32)


def _read_scores(score_shards, nv, model):
    """The per-row columns of the score shards over the valid positions (no N x C matrix)."""
    cols: dict[str, np.ndarray] = {}
    names = ["raw_knn", "pca"] + (["raw_mahalanobis"] if model.gaussians is not None else []) \
        + (["umap"] if model.anchors is not None else [])
    for p in score_shards:
        t = st.read_columns(Path(p), ["vrow"] + names)
        r = t.column("vrow").to_numpy()
        for name in names:
            v = st.read_matrix(t, name) if name in ("pca", "umap") else t.column(name).to_numpy()
            if name not in cols:
                cols[name] = np.zeros((nv,) + v.shape[1:], dtype=v.dtype)
            cols[name][r] = v
    return cols


def _spread_to_file(values: np.ndarray, pos: np.ndarray, n: int, path: Path) -> np.ndarray:
    """``analysis._spread`` into a memory-mapped ``.npy`` (NaN for the invalid rows), block by block."""
    values = np.asarray(values)
    tmp = str(path) + ".tmp.npy"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=values.dtype, shape=(n,) + values.shape[1:])
    out[:] = np.nan
    for s in range(0, len(pos), 1 << 18):
        out[pos[s:s + (1 << 18)]] = values[s:s + (1 << 18)]
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def _build(ds, inp, pos, cols, model, typical, graph_files, probs_file, region_file, features_file, method,
           layout, seed, workdir, seconds, memory, opt, embed_stage, thresholds, training=None):
    """The Analysis, by the local engine's own steps wherever they need no N x D matrix: the label
    step, the foreign clusters, slices, drift and ATC run here on the out-of-fold probabilities
    (N x C) and the graph (N x k); the flags come from the registry's rules (dqwidgets.issues)."""
    from dqwidgets.analysis import (Analysis, Calibration, _agreement, _atc, _best_closeness, _flag_all, _label_step,
                                    _samples_frame, _spread, _tables, _ValidRows, _with_slice_accuracy)
    from dqwidgets.analysis import label_with_foreign, ood_scores
    from dqwidgets.issues import IssueContext

    import ray

    from dqwidgets.compute.foreign import RESOLUTIONS as FOREIGN_RESOLUTIONS
    from dqwidgets.compute.slices import keep_partitions, release_graph

    n = inp.n
    v = _ValidRows(inp, pos)  # inp.features is 0 columns wide: the embeddings stay in the shards
    graph = _load_graph(graph_files)
    graph.method = method
    graph.indices, graph.distances = np.asarray(graph.indices), np.asarray(graph.distances)
    # the Leiden partitions (foreign regions, slices) in a worker meanwhile, as the local engine prefetches them
    partitions = ray.remote(_partitions_task).remote(
        graph_files["indices"], FOREIGN_RESOLUTIONS + (1.0,), seed,
        str(Path(graph_files["indices"]).parent / f"partitions-{seed}.npz"))
    if inp.pred_probs is not None:  # the user's model (in memory already)
        probs_all, probs = inp.pred_probs, v.pred_probs
    else:
        probs_all = np.load(probs_file[0], mmap_mode="r") if probs_file is not None else None
        probs = np.load(probs_file[1], mmap_mode="r") if probs_file is not None else None  # valid rows
    t0 = time.perf_counter()
    label = _label_step(v, probs, graph, None)
    seconds["label"] = time.perf_counter() - t0
    keep_partitions(graph.indices, _load_partitions(ray.get(partitions), seed))
    raw = {"knn": cols["raw_knn"]}  # the score pass' distances; the local engine's own calibration
    if "raw_mahalanobis" in cols:
        raw["mahalanobis"] = cols["raw_mahalanobis"]
    region_probs = np.load(region_file, mmap_mode="r") if region_file is not None else None
    ood, scales = ood_scores(raw, v.codes, graph.indices, probs, v.logits, inp.pred_probs is not None, None, seed,
                             surface=v.text_surface, k=model.k, device="cpu", region_probs=region_probs)
    label = label_with_foreign(label, ood.get("ood_cluster_score"))  # as the local engine: a foreign sample's label is wrong too
    ood_default = ood.pop("_ood_default", None)
    agreement = _agreement(probs, v, graph, None, None)
    edges, duplicate_default, duplicate_pairs = _load_edges(graph_files)
    t0 = time.perf_counter()
    slice_id, slices, spurious, drift = _tables(inp, v, graph, probs, label, seed)
    seconds["slices"] = time.perf_counter() - t0
    release_graph(graph.indices)  # the adjacency and partitions the ood and slices steps shared

    columns = {"label_issue_score": label.score, **ood, "duplicate_score": _best_closeness(edges, duplicate_pairs),
               "slice_id": slice_id}
    if agreement is not None:
        columns["neighbour_agreement"] = agreement
    columns = {c: _spread(x, pos, n) for c, x in columns.items()}
    names = np.asarray(list(inp.classes) + [None], dtype=object)
    suggested = _spread(label.suggested, pos, n)
    columns["suggested_label"] = names[suggested]
    columns["predicted_label"] = names[_spread(probs.argmax(1), pos, n) if probs is not None else np.full(n, -1)]
    training_info = None
    if training is not None:  # the user's training run: AUM, cartography, forgetting (as the local engine)
        from dqwidgets.training import training_columns

        t0 = time.perf_counter()
        trained, training_info = training_columns(training, inp.ids, inp.label_codes, inp.classes,
                                                  columns["label_issue_score"])
        columns.update(trained)
        seconds["training"] = time.perf_counter() - t0
    xy = cols["umap"] if layout in ("umap", "umap-learn") else _scaled(cols["pca"])
    samples = _samples_frame(inp, columns, _spread(xy, pos, n))
    context = IssueContext(n=n, valid_pos=pos, graph=graph, label_codes=inp.label_codes, suggested_codes=suggested,
                           label_issue_count=label.count, duplicate_edges=edges, content_hashes=inp.content_hashes,
                           split_codes=inp.split_codes, ood_default=ood_default,
                           duplicate_default=duplicate_default, duplicate_pairs=duplicate_pairs,
                           text_signatures=inp.text_signatures)
    embed_info = embed_stage.done() or {}
    info = {"seconds": seconds, "driver_peak_mb": memory, "graph_method": method, "device": "ray", "k": model.k,
            "embedder": "precomputed" if ds.modality == "embedding" else str(embed_info.get("embedder")),
            "n_issues_per_class": label.per_class(inp.classes), "reference": False, "training": training_info,
            "engine": "ray", "engine_options": opt, "embed_chunks_computed": embed_info.get("computed"),
            "run_dir": str(Path(graph_files["indices"]).parent), "label_information": label.information,
            "label_information_z": label.information_z}
    an = Analysis(ds, samples, slices=slices, spurious=spurious, drift=drift,
                  features=np.load(features_file, mmap_mode="r"), valid=inp.valid, graph=graph, pred_probs=probs_all,
                  classes=list(inp.classes), context=context,
                  calibration=Calibration(typical, scales, model.gaussians, atc=_atc(probs, v, None, agreement),
                                          probe_l2=model.probe_l2),
                  workdir=workdir, info=info)
    if label.posterior is not None:  # what an.explain shows as the calibrated top classes (memory-mapped)
        an.calibrated_probs = _spread_to_file(label.posterior, pos, n, Path(graph_files["indices"]).parent
                                              / "calibrated_probs.npy")
        label.posterior = None
    _flag_all(an, thresholds)
    an.slices = _with_slice_accuracy(an)
    if an.journal_path.exists():  # analysed before with this workdir: show the review done so far
        an.review
    an.layout_status = "final"
    return an
