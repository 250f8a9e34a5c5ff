"""Training speed of ViT-SOM, measured side by side in one run on the machine at hand.

    python benchmarks/bench_train.py [--preset mnist-clustering] [--steps 10] [--seeds 5] [--rows A,B] [--json out.json]

Rows (same model, MNIST-sized batch 128, 40×40 map unless --preset says otherwise):
  plain      a straightforward eager fp32 step (benchmarks/plain_vitsom.py: written-out attention,
             coordinate-difference neighbourhood, per-sample DataLoader, a host sync per step)
  fp32       vitsom's path in fp32 eager (data on the device, fused SDPA, gathered neighbourhood,
             no host sync)
  bf16       vitsom's path in bf16 autocast, eager (CUDA only)
  default    vitsom's default path on this device (CUDA: bf16 autocast + torch.compile; CPU: = fp32)
  default_cudagraphs  the default path compiled with mode "reduce-overhead" (CUDA graphs; CUDA only;
             what VITSOM_COMPILE_MODE=reduce-overhead gives a training run)
  together_xS           S seeds trained together (vmap over stacked parameters), time per step for S models
  together_xS_compiled  the same through torch.compile (CUDA only), as vitsom.multiseed trains them there
  checkpoint one training checkpoint of this preset (model + AdamW state, after a step) written to disk,
             for one model and for S together: seconds a save and its size, against the default step
             (how many steps one save costs; a run saves at most once a minute, train.checkpoint_every_s)
--rows picks and orders them (e.g. --rows default,default_cudagraphs,plain): each row is printed and
saved as soon as it is measured, so under a time limit put the rows that matter most first.
Prints samples/s, s per 70,000-image epoch, peak memory (CUDA) and the ratios. Synthetic uint8
images of the preset's shape are used, so no dataset is needed; the step is the real one.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_vitsom import make_plain, plain_loader, plain_step  # noqa: E402

from vitsom import data as vdata  # noqa: E402
from vitsom.config import make_config  # noqa: E402
from vitsom.multiseed import build_together  # noqa: E402
from vitsom.records import atomic_write_json, device_info, git_commit  # noqa: E402
from vitsom.som import gamma_at  # noqa: E402
from vitsom.taskdata import ArrayBatches  # noqa: E402
from vitsom.train import build_model, compile_with_fallback, make_optimizer, make_train_step, resolve_device  # noqa: E402

EPOCH = 70_000


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, steps: int, warmup: int, dev) -> float:
    for _ in range(warmup):
        fn()
    sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(dev)
    return (time.perf_counter() - t) / steps


def peak(dev):
    if dev.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(dev) / 1e9, 3)


def reset_peak(dev):
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def row_names(cuda: bool, seeds: int) -> list[str]:
    """The rows this benchmark can measure on a CUDA device or a CPU, in their default order."""
    names = ["plain", "fp32"] + (["bf16", "default", "default_cudagraphs"] if cuda else [])
    if seeds > 1:
        names += [f"together_x{seeds}"] + ([f"together_x{seeds}_compiled"] if cuda else [])
    return names + ["checkpoint"]


def checkpoint_cost(preset: str, seeds: int, dev, repeats: int = 3) -> dict:
    """Seconds to write one training checkpoint of ``preset`` (model and AdamW state after one step,
    as vitsom.train saves it), for one model and for ``seeds`` models together; best of ``repeats``."""
    import tempfile
    from vitsom.records import atomic_torch_save
    out = {}
    for members in sorted({1, max(seeds, 1)}):
        cfgs = [make_config(preset, "paper", s, ["train.precision=fp32"]) for s in range(members)]
        _, params, _, opt, _ = build_together(cfgs, dev, None, 1000)
        for p in params.values():                    # one step's worth of AdamW state
            p.grad = torch.randn_like(p) * 1e-3
        opt.step()
        state = {"params": {n: p.detach() for n, p in params.items()}, "optimizer": opt.state_dict()}
        times = []
        with tempfile.TemporaryDirectory() as d:
            for _ in range(repeats):
                sync(dev)
                t = time.perf_counter()
                atomic_torch_save(state, Path(d) / "checkpoint.pt")
                times.append(time.perf_counter() - t)
            size = (Path(d) / "checkpoint.pt").stat().st_size
        out[f"x{members}"] = {"s_per_save": round(min(times), 4), "mb": round(size / 1e6, 1)}
        del params, opt, state
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mnist-clustering")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 10 CPU, 100 GPU)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=5, help="members in the seeds-together row (0 = skip)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--rows", default=None,
                    help="comma-separated rows to measure, in this order (default: every row this device has)")
    args = ap.parse_args()

    dev = resolve_device(args.device)
    steps = args.steps or (100 if dev.type == "cuda" else 10)
    warm = args.warmup if args.warmup is not None else (30 if dev.type == "cuda" else 2)
    cfg = make_config(args.preset, "paper", 0, ["train.precision=fp32"])
    spec = vdata.get_spec(cfg.dataset)
    B, total = cfg.train.batch_size, 1_000_000
    g = torch.Generator().manual_seed(0)
    n = max(4 * B, 2048)
    images = torch.randint(0, 256, (n, spec.channels, spec.image_size, spec.image_size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, spec.num_classes, (n,), generator=g)
    arrays = vdata.ImageArrays(images, labels, spec.name, spec.num_classes)
    rows: dict[str, dict] = {}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; preset {args.preset}; batch {B}; {steps} timed steps")
    meta = {"device": name, "device_info": device_info(dev), "git": git_commit(), "torch": torch.__version__,
            "preset": args.preset, "batch": B, "steps": steps}

    def measure(label: str, run) -> None:
        """One row: measured, printed and saved at once, so that a row that fails (or a timeout
        later on) keeps the rows before it; a failed row records its error instead."""
        try:
            r = run()
            r["samples_per_s"] = round(B * r.get("members", 1) / r["s_per_step"], 1)
            print(f"  {label:16s} {1e3 * r['s_per_step']:8.2f} ms/step  {r['samples_per_s']:10.1f} samples/s", flush=True)
        except Exception as e:  # noqa: BLE001 - report, keep measuring the other rows
            r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            print(f"  {label:16s} FAILED {r['error']}", flush=True)
        rows[label] = r
        if args.json:
            atomic_write_json(Path(args.json), dict(meta, rows=rows, partial=True,
                                                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    def plain_row() -> dict:
        """(a) a straightforward eager fp32 step"""
        reset_peak(dev)
        torch.manual_seed(0)
        model = make_plain(build_model(cfg).to(dev))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loader = plain_loader(images, labels, B, 0)
        state = {"step": 0, "it": iter(loader)}

        def plain():
            try:
                x, _ = next(state["it"])
            except StopIteration:
                state["it"] = iter(loader)
                x, _ = next(state["it"])
            plain_step(model, opt, x.to(dev), state["step"], total, cfg.som.t_max, cfg.som.t_min, cfg.som.gamma)
            state["step"] += 1
        return {"s_per_step": timed(plain, steps, warm, dev), "peak_gb": peak(dev)}

    def ours_row(precision: str, compile_mode: str | None):
        """(b) vitsom's step: eager in ``precision``, or compiled in ``compile_mode``"""
        def run() -> dict:
            reset_peak(dev)
            c = make_config(args.preset, "paper", 0, [f"train.precision={precision}"])
            torch.manual_seed(0)
            model = build_model(c).to(dev)
            opt = make_optimizer(c, model, dev)
            amp = torch.bfloat16 if precision == "bf16" else None
            step_fn = make_train_step(model, opt, c, total, amp, compile=compile_mode is not None,
                                      compile_mode=compile_mode)
            batches = ArrayBatches(arrays, B, dev, 0)
            step_t = torch.zeros((), device=dev)
            gen = {"it": batches.epoch(0), "e": 0}

            def ours():
                try:
                    x, y = next(gen["it"])
                except StopIteration:
                    gen["e"] += 1
                    gen["it"] = batches.epoch(gen["e"])
                    x, y = next(gen["it"])
                step_fn(x, y, step_t)
                step_t.add_(1)
            return {"s_per_step": timed(ours, steps, warm + (20 if compile_mode else 0), dev), "peak_gb": peak(dev),
                    **({"compile_mode": compile_mode} if compile_mode else {})}
        return run

    def together_row(compile_: bool):
        """(d) S seeds together: eager, or compiled (as vitsom.multiseed trains them on CUDA)"""
        def run() -> dict:
            reset_peak(dev)
            prec = "bf16" if dev.type == "cuda" else "fp32"
            cfgs = [make_config(args.preset, "paper", s, [f"train.precision={prec}"]) for s in range(args.seeds)]
            amp = torch.bfloat16 if dev.type == "cuda" else None
            _, params, p_buf, opt, vloss = build_together(cfgs, dev, amp, total)
            if compile_:
                vloss = compile_with_fallback(vloss)
            bs = [ArrayBatches(arrays, B, dev, s) for s in range(args.seeds)]
            state = {"its": [b.epoch(0) for b in bs]}
            step_t = torch.zeros((), device=dev)
            gammas = torch.full((args.seeds,), cfg.som.gamma, device=dev)

            def together():
                try:
                    pairs = [next(i) for i in state["its"]]
                except StopIteration:
                    state["its"] = [b.epoch(1) for b in bs]
                    pairs = [next(i) for i in state["its"]]
                x = torch.stack([p[0] for p in pairs])
                y = torch.stack([p[1] for p in pairs])
                loss, _, _ = vloss(params, p_buf, x, y, step_t, gammas * float(gamma_at(1, 2, 1.0)))
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
                step_t.add_(1)
            t_steps = max(2, steps // 2) if dev.type == "cpu" else steps
            t_warm = min(warm, 1) if dev.type == "cpu" else warm + (20 if compile_ else 0)
            return {"s_per_step": timed(together, t_steps, t_warm, dev), "peak_gb": peak(dev), "members": args.seeds}
        return run

    cuda = dev.type == "cuda"
    available = {"plain": plain_row, "fp32": ours_row("fp32", None)}
    if cuda:
        available.update(bf16=ours_row("bf16", None), default=ours_row("bf16", "default"),
                         default_cudagraphs=ours_row("bf16", "reduce-overhead"))
    if args.seeds > 1:
        available[f"together_x{args.seeds}"] = together_row(False)
        if cuda:
            available[f"together_x{args.seeds}_compiled"] = together_row(True)
    available["checkpoint"] = None         # measured apart (not a step): see checkpoint_cost
    assert list(available) == row_names(cuda, args.seeds)
    wanted = list(available) if args.rows is None else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in available]
    if unknown:
        raise SystemExit(f"unknown or unavailable row(s) {', '.join(unknown)} on {dev.type}; "
                         f"this device has: {', '.join(available)}")
    ckpt = None
    for label in wanted:
        if label == "checkpoint":
            try:
                ckpt = checkpoint_cost(args.preset, args.seeds, dev)
                meta["checkpoint"] = ckpt
                print("  checkpoint       " + ", ".join(f"{k}: {v['mb']} MB in {v['s_per_save']:.3f} s"
                                                        for k, v in ckpt.items()), flush=True)
            except Exception as e:  # noqa: BLE001 - report, keep the other rows
                meta["checkpoint"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
                print(f"  checkpoint       FAILED {meta['checkpoint']['error']}", flush=True)
            continue
        measure(label, available[label])
    if not cuda and "fp32" in rows and "error" not in rows["fp32"]:
        rows["default"] = dict(rows["fp32"], note="on CPU the default path is fp32 eager")

    ok = {k: r for k, r in rows.items() if "error" not in r}
    for r in ok.values():
        members = r.get("members", 1)
        r["s_per_epoch_per_model"] = round(EPOCH / B * r["s_per_step"] / members, 3)
        r["s_per_epoch_all_members"] = round(EPOCH / B * r["s_per_step"], 3)
    base = ok["plain"]["s_per_step"] if "plain" in ok else None
    print(f"\n{'row':16s} {'samples/s':>10s} {'s/epoch':>9s} {'vs plain':>9s} {'peak GB':>8s}")
    for k, r in rows.items():
        if "error" in r:
            print(f"{k:16s} failed: {r['error']}")
            continue
        ratio = base / (r["s_per_step"] / r.get("members", 1)) if base else float("nan")
        r["speedup_vs_plain_per_model"] = round(ratio, 2)
        print(f"{k:16s} {r['samples_per_s']:10.1f} {r['s_per_epoch_all_members']:9.2f} {ratio:8.2f}× "
              f"{'' if r['peak_gb'] is None else r['peak_gb']:>8}")
    for k in [k for k in ok if k.startswith("together")] if "default" in ok else []:
        r = ok[k]["s_per_step"] / ok["default"]["s_per_step"]
        ok[k]["time_vs_one_seed_default"] = round(r, 2)
        print(f"{k}: {ok[k]['members']} models per step in {r:.2f}× the time of one model on the default path")
    step_ref = next((k for k in ("default", "fp32") if k in ok), None)
    if ckpt and step_ref:
        for k, v in ckpt.items():
            members = int(k[1:])
            ref = step_ref if members == 1 else next(
                (n for n in (f"together_x{members}_compiled", f"together_x{members}") if n in ok), None)
            if ref:
                v["steps_per_save"] = round(v["s_per_save"] / ok[ref]["s_per_step"], 1)
                v["steps_of"] = ref
                print(f"checkpoint {k}: one save costs {v['steps_per_save']:.1f} steps of row {ref}; "
                      "a run saves at most once a minute (train.checkpoint_every_s)")
    if args.json:
        atomic_write_json(Path(args.json), dict(meta, rows=rows, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


if __name__ == "__main__":
    main()
