"""Timing and table helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from typing import Optional

import torch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device, min_time=0.2, min_reps=5, max_reps=200, warmup=3, samples=False):
    """Median wall time of fn() in ms, after ``warmup`` calls; on CUDA with events around each call.
    With ``samples``, every call's time (for :func:`row`)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start_all < min_time):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times if samples else statistics.median(times)


def interleaved(impls: dict, device, blocks: int = 7, reps: int = 20, min_time: float = 0.0,
                warmup: int = 3) -> dict[str, list[float]]:
    """Each impl's mean time per call in ms, per block, with the impls interleaved: every block runs
    each impl ``reps`` times in turn, for at least ``blocks`` blocks and ``min_time`` seconds (at most
    four times ``blocks``). On a shared machine a burst of load then lands on every impl alike, and
    the least-disturbed block of each is the fair comparison. An impl that raises is left out, its
    error printed."""
    ready = {}
    for name, fn in impls.items():
        try:
            for _ in range(warmup):
                fn()
            ready[name] = fn
        except Exception as e:  # e.g. torch.compile without double backward: say so, go on
            print(f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    times: dict[str, list[float]] = {name: [] for name in ready}
    start = time.perf_counter()
    while ready and (len(next(iter(times.values()))) < blocks or time.perf_counter() - start < min_time):
        for name, fn in ready.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / reps * 1e3)
        if len(next(iter(times.values()))) >= 4 * blocks:
            break
    return times


def best_rows(op: str, size, times: dict[str, list[float]], device, baselines=("eager", "foreach", "compile"),
              **extra) -> list[dict]:
    """One :func:`row` per impl of an :func:`interleaved` run, with ``ms``, the impl's least-disturbed
    block, and ``vs_<baseline>``, the baseline's least-disturbed block over it, for each of
    ``baselines`` that ran."""
    best = {impl: min(ts) for impl, ts in times.items()}
    rows = []
    for impl, ts in times.items():
        r = {**row(op, impl, size, ts, device, **extra), "ms": best[impl]}
        r.update({f"vs_{b}": best[b] / best[impl] for b in baselines if b in best})
        rows.append(r)
    return rows


def matmul_flops(fn) -> int:
    """The floating-point operations of the matrix products and convolutions (forward and backward,
    torch's own flop formulas) in one call of ``fn``: the work no implementation of the same math
    avoids, so eager's count over a row's is the most that row can gain where the products run at
    the same speed. Counted at the dispatcher, under autograd's double backward too."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count() as count:
        fn()
    return count.total


def row(op: str, impl: str, size, times_ms, device, peak_mb=None, **extra) -> dict:
    """One measurement in the schema every benchmark writes to --json: what ran (op, impl, size and
    any ``extra`` such as loss or threads), its times in ms (min, p50, p90 of the samples: runs or
    blocks), peak memory in MB when measured, and where (device, torch and pygan versions)."""
    import pygan

    ts = sorted(times_ms)
    return {"op": op, "impl": impl, "size": size, **extra, "ms_min": ts[0],
            "ms_p50": statistics.median(ts), "ms_p90": ts[min(len(ts) - 1, int(0.9 * len(ts)))],
            "samples": len(ts), "peak_mb": peak_mb, "device": device_name(torch.device(device)),
            "torch": torch.__version__, "pygan": pygan.__version__}


def cpu_name() -> str:
    """The CPU's model as the kernel reports it (Linux), else what ``platform`` knows (often only
    the architecture)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def format_table(rows, header, cols=("size", "impl", "ms", "GB/s", "vs_eager", "vs_compile", "of_copy_bw")):
    cols = [c for c in cols if any(c in r for r in rows)]
    lines = []
    if header:
        lines.append(" ".join(f"{c:>11}" for c in cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if isinstance(v, float):
                cells.append(f"{v:>11.4f}" if c == "ms" else f"{v:>11.2f}")
            else:
                cells.append(f"{v!s:>11}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def parser(doc: str, interleaved: Optional[tuple[int, int, Optional[int]]] = None) -> argparse.ArgumentParser:
    """The options every benchmark takes: --device, --no-compile, --json; with ``interleaved`` =
    (blocks, reps, threads) defaults, also those of :func:`interleaved` and --threads (applied by
    :func:`main`)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    p.add_argument("--json", help="also write the results to this file")
    if interleaved is not None:
        blocks, reps, threads = interleaved
        p.add_argument("--blocks", type=int, default=blocks,
                       help="interleaved blocks (at least); each impl's least disturbed block counts")
        p.add_argument("--reps", type=int, default=reps, help="calls per impl per block")
        shown = threads if threads else "torch's own"
        p.add_argument("--threads", type=int, default=threads, help=f"torch.set_num_threads (default: {shown})")
    return p


def main(args: argparse.Namespace, title: str, run) -> None:
    """Prints the header line, runs the benchmark and writes its results to --json."""
    import pygan

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    print(f"pygan {pygan.__version__} {title}: device={device_name(torch.device(args.device))} "
          f"torch={torch.__version__}", flush=True)
    result = run(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
