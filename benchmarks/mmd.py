"""Time and peak memory of the unbiased gaussian MMD^2: pygan's fused tiled kernel sums against the
kernel-matrix formulation (``torch.cdist``, ``exp``, sums of the three n x m blocks) and its
``torch.compile``.

The baseline materializes K_xx, K_yy and K_xy (3 n^2 floats for n = m); pygan holds one 64 x 64 tile
per program and O((n + m) d) memory. ``TFLOP/s`` counts the 6 n^2 d FLOP of the three blocks' dot
products, the work any formulation does, so it compares with the device's matrix peak. Peak memory
is the growth of allocated memory over the inputs on a GPU, and of the process's resident set on
the CPU (each case then runs in a fresh process: ``--one IMPL N D``). A baseline whose matrices would not fit is not run;
the table says how much it needed.

    python benchmarks/mmd.py                                   # CPU: n in 1e3, 1e4; d in 2, 64
    python benchmarks/mmd.py --device cuda --sizes 1000 10000 50000 100000 --dims 2 64 2048
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import torch

import pygan

import _timing as timing
from _timing import sync, time_ms

SIGMA_PER_DIM = 1.0  # bandwidth sigma = sqrt(d): the median distance of the standard normals used


def cdist_mmd2(x, y, sigma):
    """The kernel-matrix formulation: three n x m matrices of squared distances, exp, block sums."""
    c = 0.5 / sigma**2
    n, m = x.shape[0], y.shape[0]
    kxx = torch.exp(-torch.cdist(x, x).square() * c)
    kyy = torch.exp(-torch.cdist(y, y).square() * c)
    kxy = torch.exp(-torch.cdist(x, y).square() * c)
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(fn, device, out):
    """Every call's ms and the peak memory growth of fn(); on the CPU run where the RSS can be read."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        out.update(times=time_ms(fn, device, min_reps=3, max_reps=20, samples=True), peak_mb=peak / 2**20)
    else:
        base = _rss_bytes()
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        out.update(times=time_ms(fn, device, min_time=0.5, min_reps=3, max_reps=10, samples=True),
                   peak_mb=max(peak, 0) / 2**20)


def _inputs(n, d, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g).to(device)
    y = (torch.randn(n, d, generator=g) * 1.01).to(device)
    return x, y, (SIGMA_PER_DIM * d) ** 0.5


def _case(impl, x, y, sigma, backend):
    if impl == "pygan":
        return lambda: pygan.metrics.mmd2(x, y, bandwidth=sigma, backend=backend)
    fn = cdist_mmd2 if impl == "eager" else torch.compile(cdist_mmd2)
    return lambda: fn(x, y, sigma)


def run_case(impl, n, d, args):
    """One case's time and peak memory: in this process on a GPU, in a fresh one on the CPU (so
    that the resident-set peak is this case's alone)."""
    device = torch.device(args.device)
    if device.type == "cuda":
        x, y, sigma = _inputs(n, d, device)
        out = {}
        try:
            _measure(_case(impl, x, y, sigma, args.backend), device, out)
        except torch.OutOfMemoryError:
            out["error"] = "out of memory"
        del x, y
        torch.cuda.empty_cache()
        return out
    cmd = [sys.executable, __file__, "--device", args.device, "--one", impl, str(n), str(d)]
    if args.backend:
        cmd += ["--backend", args.backend]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not lines:
        return {"error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1][:60]}"}
    return json.loads(lines[-1])


def one(args):
    impl, n, d = args.one[0], int(args.one[1]), int(args.one[2])
    x, y, sigma = _inputs(n, d, torch.device(args.device))
    out = {}
    _measure(_case(impl, x, y, sigma, args.backend), torch.device(args.device), out)
    print(json.dumps(out))


def run(args):
    device = torch.device(args.device)
    free = (torch.cuda.mem_get_info(device)[0] if device.type == "cuda"
            else os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    compiled = not args.no_compile
    rows = []
    print(f"{'n':>7} {'d':>5} {'impl':>9} {'ms':>10} {'peak MB':>9} {'TFLOP/s':>8} {'vs eager':>9} {'vs compile':>10}")
    for d in args.dims:
        for n in args.sizes:
            flop = 6 * n * n * d
            need = 4 * n * n * 4  # three matrices and one temporary, float32
            cases = ["pygan"]
            if need < 0.8 * free:
                cases += ["eager"] + (["compile"] if compiled else [])
            results = {}
            for impl in cases:
                results[impl] = run_case(impl, n, d, args)
            for impl in ("eager", "compile"):
                if impl not in cases and (impl == "eager" or compiled):
                    results[impl] = {"error": f"not run: needs ~{need / 2**30:.0f} GiB"}
            # Rows first (pygan's ratios need the baselines measured after it), then the printout.
            made = {}
            for impl, r in results.items():
                if "times" not in r:
                    made[impl] = {"op": "mmd2", "impl": impl, "size": n, "d": d, "error": r["error"]}
                    continue
                # A forced backend gets its own column: --backend cuda beside the default's rows.
                name = f"pygan-{args.backend}" if impl == "pygan" and args.backend else impl
                made[impl] = timing.row("mmd2", name, n, r["times"], device, r["peak_mb"], d=d)
                made[impl]["tflops"] = flop / (made[impl]["ms_p50"] * 1e-3) / 1e12
            for impl, row in made.items():
                rows.append(row)
                if "error" in row:
                    print(f"{n:>7} {d:>5} {impl:>9} {row['error']}", flush=True)
                    continue
                ratios = [made[b]["ms_p50"] / row["ms_p50"] if impl == "pygan" and "ms_p50" in made.get(b, {})
                          else float("nan") for b in ("eager", "compile")]
                print(f"{n:>7} {d:>5} {impl:>9} {row['ms_p50']:>10.2f} {row['peak_mb']:>9.1f} {row['tflops']:>8.3f} "
                      f"{ratios[0]:>9.2f} {ratios[1]:>10.2f}", flush=True)
    return {"rows": rows}


if __name__ == "__main__":
    p = timing.parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", help="n = m (default: 1e3 1e4 on the CPU, all four on a GPU)")
    p.add_argument("--dims", type=int, nargs="+", help="feature dimensions (default: 2 64 on the CPU, 2 64 2048 on a GPU)")
    p.add_argument("--backend", default=None, help="pygan backend (default: auto)")
    p.add_argument("--one", nargs=3, metavar=("IMPL", "N", "D"), help="run one case (pygan, eager or compile) and print its JSON (used on the CPU)")
    args = p.parse_args()
    if args.one:
        one(args)
        sys.exit(0)
    gpu = args.device.startswith("cuda")
    args.sizes = args.sizes or ([1000, 10000, 50000, 100000] if gpu else [1000, 10000])
    args.dims = args.dims or ([2, 64, 2048] if gpu else [2, 64])
    timing.main(args, "MMD^2 (unbiased, gaussian kernel)", run)
