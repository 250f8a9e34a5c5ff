"""SOM distance cost at the paper's size, measured side by side in one run on the machine at hand.

    python benchmarks/bench_distance.py [--batch 128] [--units 1600] [--dim 3136] [--repeats 3] [--json out.json]

Forward + backward of the (B, K) distance matrix between B latents and K prototypes (MNIST 40×40:
B = 128, K = 1,600, D = 196 tokens × 16 = 3,136), with a random upstream gradient, for:
  cosine, euclidean        vitsom.som (one matmul each, never a B×K×D tensor)
  manhattan                vitsom.som's default chunking on this device (4 MiB chunks on a CPU)
  manhattan-256MiB         the same exact L1 kernel in 256 MiB chunks (the GPU default; the CPU
                           default before it was measured here)
  manhattan-cdist          torch.cdist(p=1) with autograd (the obvious way to write it)
Prints seconds per call (median of --repeats) and the ratios against cosine and between the
Manhattan variants.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitsom.records import atomic_write_json, device_info, git_commit  # noqa: E402
from vitsom.som import cosine_distance, euclidean_distance, manhattan_distance  # noqa: E402


def timed(fn, z, w, up, dev, repeats: int) -> float:
    def once() -> float:
        z.grad = w.grad = None
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (fn(z, w) * up).sum().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    once()                                        # warm-up (allocator, kernels)
    return statistics.median(once() for _ in range(repeats))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--units", type=int, default=1600)
    ap.add_argument("--dim", type=int, default=3136)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-cdist", action="store_true", help="leave out torch.cdist(p=1) (slow on a CPU)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.batch, args.dim, generator=g).to(dev).requires_grad_()
    w = torch.rand(args.units, args.dim, generator=g).to(dev).requires_grad_()
    up = torch.rand(args.batch, args.units, generator=g).to(dev)
    rows = {"cosine": cosine_distance, "euclidean": euclidean_distance, "manhattan": manhattan_distance,
            "manhattan-256MiB": lambda a, b: manhattan_distance(a, b, max_chunk_bytes=256 * 2**20)}
    if not args.skip_cdist:
        rows["manhattan-cdist"] = lambda a, b: torch.cdist(a, b, p=1)
    res = {}
    print(f"B={args.batch} K={args.units} D={args.dim} on {dev} ({torch.get_num_threads()} threads), "
          f"forward+backward, median of {args.repeats}")
    for name, fn in rows.items():
        res[name] = timed(fn, z, w, up, dev, args.repeats)
        print(f"  {name:18s} {res[name]:8.4f} s   ({res[name] / res['cosine']:6.1f}× cosine)", flush=True)
    ratios = {"manhattan_256MiB_over_default": res["manhattan-256MiB"] / res["manhattan"]}
    if "manhattan-cdist" in res:
        ratios["manhattan_cdist_over_default"] = res["manhattan-cdist"] / res["manhattan"]
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}×")
    if args.json:
        atomic_write_json(Path(args.json), {"seconds": res, "ratios": ratios, "shape": [args.batch, args.units, args.dim],
                                            "device": device_info(dev), "git": git_commit(),
                                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
