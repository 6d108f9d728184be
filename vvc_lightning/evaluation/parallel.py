"""`evaluate --jobs N`: the classic-codec rows (encode, decode and metric pass) in N worker processes.

Neural rows stay in the main process, one at a time: a model (and its GPU memory) is loaded there once, not
once per worker, and its decoded frames are scored as they stream out. Each worker builds the metrics and
the classic settings once from the run's options, takes the main process's metric protocol (keys, plane
metrics) and its torch thread count, and writes each row to the same cache, under the same key, as one
process would: the rows, and every output made of them, are those of `--jobs 1`. Workers start from the
fork server of `datamodules.workers` (a forked child of a process that decoded video with PyAV can hang).

Classic rows whose points are fixed start at once, beside the neural rows; a QP search probes every
sequence at once (`probe_ahead`) and the points it picks are coded together before its extension.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from vvc_lightning.errors import VVCError

PRELOAD = ["vvc_lightning.evaluation.harness", "vvc_lightning.evaluation.planes", "vvc_lightning.metrics",
           "vvc_lightning.metrics.stream", "vvc_lightning.evaluation.baselines", "vvc_lightning.metrics.yuv"]
_STATE: dict[str, Any] = {}  # in a worker: its harness and classic specs
SHARED = ("keys", "yuv_keys", "info", "protocol", "labels")  # the harness state workers take over


def check_jobs(jobs: Any) -> int:
    """--jobs: a whole number from 1 to the cores this process may use; one line otherwise."""
    from vvc_lightning.codec.pipeline.threads import usable_cores

    cores = usable_cores()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= cores:
        raise VVCError(f"--jobs must be a whole number from 1 to {cores} (the CPU cores this process may "
                       f"use: each job is a process coding and measuring rows), got {jobs}")
    return jobs


def start_server(jobs: int) -> None:
    """With more than one job, start the fork server now: it imports the harness and metrics (seconds)
    while this process reads the sequences and codes the neural rows."""
    if jobs > 1:
        from vvc_lightning.datamodules.workers import worker_context

        worker_context(PRELOAD)


def _start(harness_type: type, opts: Any, state: dict[str, Any], said: set[str], threads: int) -> None:
    """A worker's set-up: the parent's torch threads and notes said, a harness, the classic settings."""
    import torch

    from vvc_lightning.evaluation.inputs import build_specs
    from vvc_lightning.metrics import base

    torch.set_num_threads(threads)
    base._SAID.update(said)  # the main process has said these once already
    harness = harness_type(opts)
    for name, value in state.items():
        setattr(harness, name, value)
    specs = build_specs(replace(opts, ckpts=[]))
    _STATE.update(harness=harness, specs={s.name: s for s in specs})


def _row(name: str, point: Any, seq: Any) -> dict:
    """In a worker: one classic row, cached or coded and measured."""
    return _STATE["harness"].run_row(_STATE["specs"][name], point, seq)


class PooledHarness:
    """A `Harness` whose classic rows run in worker processes (started on first use); the rest is its own."""

    def __init__(self, harness: Any, jobs: int) -> None:
        self.harness, self.jobs = harness, jobs
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.harness, name)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import torch

            from vvc_lightning.datamodules.workers import worker_context
            from vvc_lightning.metrics import base

            state = {k: getattr(self.harness, k) for k in SHARED}
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=worker_context(PRELOAD), initializer=_start,
                initargs=(type(self.harness), self.harness.opts, state, set(base._SAID),
                          torch.get_num_threads()))
        return self._pool

    def _finished(self, key: str) -> bool:
        row, missing = self.harness.cached(key)
        return row is not None and not missing and (self.harness.cache / "crops" / f"{key}.png").is_file()

    def prefetch(self, units: list[tuple[Any, Any, Any]]) -> None:
        """Start the classic rows of (spec, point, sequence) `units` that are not cached (each once)."""
        with self._lock:
            for spec, point, seq in units:
                key = self.harness.row_key(spec, point, seq)
                if spec.kind == "neural" or key in self._futures or self._finished(key):
                    continue
                self._futures[key] = self._executor().submit(_row, spec.name, point, seq)

    def run_row(self, spec: Any, point: Any, seq: Any) -> dict:
        """One row: a neural one here, a classic one from its worker (started now if it was not)."""
        if spec.kind == "neural":
            return self.harness.run_row(spec, point, seq)
        key = self.harness.row_key(spec, point, seq)
        self.prefetch([(spec, point, seq)])
        future = self._futures.get(key)
        if future is None:  # cached: read here
            return self.harness.run_row(spec, point, seq)
        try:
            return self.harness.named(future.result(), spec, point, seq)
        except BrokenProcessPool as exc:
            raise VVCError(f"--jobs {self.jobs}: a worker process ended abruptly (killed, out of memory, or "
                           "started from a script read from standard input, which worker processes cannot "
                           "import); the rows finished are cached: run again, or with --jobs 1") from exc

    def start_fixed(self, specs: list[Any], seqs: list[Any], given: set[str]) -> None:
        """Start the classic rows whose points no QP search will change (given, or no neural curve)."""
        searched = any(s.kind == "neural" for s in specs)
        self.prefetch([(s, p, q) for s in specs if s.kind != "neural" and (s.name in given or not searched)
                       for p in s.points for q in seqs])

    def probe_ahead(self, spec: Any, targets: list[Any], by_name: dict[str, Any]) -> None:
        """Run each sequence's part of the QP search alone, all sequences at once, so that the search itself
        (`qp_search.search_points`, whose probes on a sequence depend on that sequence alone) finds every
        probe coded."""
        from vvc_lightning.evaluation.qp_search import search_points

        groups: dict[str, list[Any]] = {}
        for t in targets:
            groups.setdefault(t.sequence, []).append(copy.copy(t))

        def one(part: list[Any]) -> None:
            search_points(spec.name, spec.point_range, part,
                          lambda s, q: float(self.run_row(spec, q, by_name[s])["bpp"]))

        with ThreadPoolExecutor(max(1, len(groups))) as threads:
            list(threads.map(one, groups.values()))

    def close(self) -> None:
        """Stop the workers (rows not started are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@contextlib.contextmanager
def pooled(harness: Any, jobs: int) -> Iterator[Any]:
    """`harness` itself for one job, else a `PooledHarness` whose workers stop when the block ends."""
    check_jobs(jobs)
    if jobs == 1:
        yield harness
        return
    pool = PooledHarness(harness, jobs)
    try:
        yield pool
    finally:
        pool.close()
