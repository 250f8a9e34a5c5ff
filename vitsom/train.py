"""Training of ViT-SOM and the baselines (plain PyTorch, no framework).

``train(cfg)`` runs one configuration end to end: data (:mod:`vitsom.taskdata`) → model → AdamW
with the reference's LR recipe → per-step temperature and γ schedules → evaluation
(:mod:`vitsom.evaluation`) → an atomically written run record.
It checkpoints every ``cfg.train.checkpoint_every`` steps and at each epoch end, at most once per
``cfg.train.checkpoint_every_s`` seconds, and always when it stops early (a deadline, or Ctrl-C /
SIGTERM: :func:`stop_requests`); rerunning the same config resumes from the checkpoint and reaches
the same final result as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import data as vdata
from .config import RunConfig
from .evaluation import evaluate
from .records import (SCHEMA, atomic_torch_save, atomic_write_json, device_info, existing_record_path, git_commit,
                      load_record, now_iso, record_path, repeat_path, run_dir as run_dir_of, runs_root)
from .som import gamma_at, temperature_at
from .taskdata import ArrayBatches, LoaderBatches, TaskData, input_norm, labels_of, load_task_data
from .vit import ViTSOM, count_parameters


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT (Ctrl-C) or SIGTERM after it saved its checkpoint: rerunning
    the same command resumes there. A KeyboardInterrupt, so code that stops on Ctrl-C still does."""


@contextlib.contextmanager
def stop_requests(log: Callable[[str], None] = print) -> Iterator[list[str]]:
    """Turn SIGINT and SIGTERM into a request to stop at the next safe point.

    Yields a list that receives the signal's name; the training loop checks it after each step,
    saves a checkpoint and raises :class:`TrainingInterrupted`. A second signal stops at once (the
    last checkpoint stays). Outside the main thread signals cannot be caught: the list stays empty."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def handler(signum, frame) -> None:
        name = signal.Signals(signum).name
        if received:
            restore()
            raise KeyboardInterrupt(f"{name} again: stopped at once, without a new checkpoint")
        received.append(name)
        log(f"[vitsom] {name}: saving a checkpoint after this step, then stopping (send it again to stop at once)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield received
    finally:
        restore()


class CheckpointClock:
    """When a run may write its next checkpoint: at most one per ``every_s`` seconds (0: no limit).
    Also counts the checkpoints written and the seconds spent writing them (for the record)."""

    def __init__(self, every_s: float):
        self.every_s, self.last, self.saves, self.seconds = every_s, time.perf_counter(), 0, 0.0

    def due(self) -> bool:
        return self.every_s <= 0 or time.perf_counter() - self.last >= self.every_s

    def save(self, write: Callable[[], None]) -> None:
        started = time.perf_counter()
        write()
        self.last = time.perf_counter()
        self.saves += 1
        self.seconds += self.last - started

    def summary(self) -> dict:
        return {"checkpoints_written": self.saves, "checkpoint_time_s": round(self.seconds, 3)}


# ----------------------------------------------------------------------------- small pieces

def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
    return dev


def build_model(cfg: RunConfig) -> nn.Module:
    """The model of a config: ViT-SOM, or a baseline (``model.arch``) from :mod:`vitsom.baselines`.

    Every model returns an object with ``z``, ``recon``, ``logits`` and ``som`` (a SOMOutput or
    None) and has a ``som`` attribute (a SOMLayer or None)."""
    m, s = cfg.model, cfg.som
    if m.arch != "vit":
        from .baselines import build_baseline
        return build_baseline(cfg)
    grid = (s.height, s.width)
    return ViTSOM(m.img_size, m.in_chans, m.patch, m.emb_dim, m.depth, m.heads, m.mlp_ratio, m.dec_emb,
                  m.dec_depth, num_classes=m.num_classes, som_grid=grid, distance=s.distance,
                  topology=s.topology, som_input=s.som_input)


def lr_factor(epoch: int, epochs: int, warmup_epochs: int, min_factor: float) -> float:
    """Per-epoch LR multiplier: max(min_lr, min((e+1)/warmup, ½(1 + cos(π e / E))))."""
    return max(min_factor, min((epoch + 1) / max(warmup_epochs, 1), 0.5 * (1 + math.cos(math.pi * epoch / epochs))))


def param_groups(model: ViTSOM, weight_decay: float, som_weight_decay: float,
                 tensors: dict[str, torch.Tensor] | None = None) -> list[dict]:
    """ViT weights with ≥2 dims (cls token included) decay; 1-D ones do not; prototypes and the
    head form a third group with their own decay (the reference's AdamW default, 0.01).
    ``tensors`` (name → tensor) puts other tensors in the groups in the model's parameters' places:
    the seeds-together trainer passes its stacked (S, …) parameters."""
    decay, no_decay, other = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        t = p if tensors is None else tensors[name]
        if name.startswith(("som.", "head.")):
            other.append(t)
        elif p.ndim >= 2:
            decay.append(t)
        else:
            no_decay.append(t)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0},
              {"params": other, "weight_decay": som_weight_decay}]
    return [g for g in groups if g["params"]]


def make_optimizer(cfg: RunConfig, model: nn.Module, device: torch.device,
                   tensors: dict[str, torch.Tensor] | None = None) -> torch.optim.Optimizer:
    """The recipe's Adam(W) over :func:`param_groups` (of ``tensors`` in the model's places if given)."""
    t = cfg.train
    lr = t.lr * t.batch_size / 256 if t.lr_batch_scaling else t.lr
    groups = param_groups(model, t.weight_decay, t.som_weight_decay, tensors)
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=t.betas, eps=t.eps, fused=device.type == "cuda")


def autocast_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    p = cfg.train.precision
    if p == "bf16" or (p == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def loss_terms(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, step_t: torch.Tensor,
               total_steps: int, amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, task loss, SOM loss) of one batch at global step ``step_t`` (a device tensor).

    L = L_task + γ_t·L_som with L_task the reconstruction error (clustering; L1, or squared with
    ``train.recon_loss=mse``) or label-smoothed CE (classification); T_t and γ_t are computed on
    the device from ``step_t``."""
    s = cfg.som
    temp = temperature_at(step_t, total_steps, s.t_max, s.t_min)
    gamma = gamma_at(step_t, total_steps, s.gamma, s.gamma_warmup)
    with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        out = model(x, temperature=temp)
    if cfg.task == "clustering":
        # the raw-pixel SOM baseline has no decoder: its only loss is the SOM's
        recon_loss = F.mse_loss if cfg.train.recon_loss == "mse" else F.l1_loss
        task = recon_loss(out.recon.float(), x) if out.recon is not None else x.new_zeros(())
    else:
        task = F.cross_entropy(out.logits.float(), y, label_smoothing=cfg.train.label_smoothing)
    som = out.som.loss.float() if out.som is not None else task.new_zeros(())
    return task + gamma * som, task, som


def compile_with_fallback(fn: Callable, log: Callable[[str], None] = print, mode: str | None = None) -> Callable:
    """``fn`` through ``torch.compile`` in ``mode`` (else env ``VITSOM_COMPILE_MODE``, else "default";
    "reduce-overhead" uses CUDA graphs). If compiling or running the compiled code raises, say so
    and step down: another mode → "default" → ``fn`` itself (eager). Never silently different maths.
    ``call.mode`` is the mode in use, ``call.fell_back`` says whether it had to step down, and
    ``call.step_down(error)`` steps down from outside (a failure in the compiled backward pass shows
    up in ``loss.backward()``, not here); it returns False when already eager."""
    mode = mode or os.environ.get("VITSOM_COMPILE_MODE") or "default"
    ladder = [(m, torch.compile(fn, dynamic=False, mode=m)) for m in dict.fromkeys([mode, "default"])]
    ladder.append(("eager", fn))

    def step_down(e: BaseException) -> bool:
        if ladder[0][1] is fn:
            return False
        name = ladder.pop(0)[0]
        log(f"[vitsom] torch.compile (mode {name}) failed ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}); continuing "
            + ("in eager mode" if ladder[0][1] is fn else f"compiled in mode {ladder[0][0]}"))
        call.mode, call.fell_back = ladder[0][0], True
        return True

    def call(*args):
        while True:
            try:
                return ladder[0][1](*args)
            except Exception as e:  # noqa: BLE001 - any compiler failure → the next rung
                if not step_down(e):
                    raise
    call.requested, call.mode, call.fell_back, call.step_down = mode, mode, False, step_down
    return call


def backward_with_fallback(losses: Callable, run: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> tuple:
    """``out = run()`` (the loss function's outputs, the total loss first), then its backward pass.
    If the backward pass of a compiled ``losses`` (see :func:`compile_with_fallback`) raises, step
    ``losses`` down a rung and redo both; the optimizer has not stepped, so the maths are unchanged."""
    while True:
        out = run()
        opt.zero_grad(set_to_none=True)
        try:
            out[0].sum().backward()
            return out
        except Exception as e:  # noqa: BLE001 - a compiled backward failed: the next rung
            if not getattr(losses, "step_down", lambda _: False)(e):
                raise


def compile_note(fn: Callable) -> str | None:
    """What a run record says about its training step's compilation: the ``torch.compile`` mode, with
    a note if it had to step down to it; None for an eager step."""
    if not hasattr(fn, "fell_back"):
        return None
    if fn.mode == "eager":
        return f"{fn.requested} (compiling failed: ran eager)"
    return fn.mode + (f" ({fn.requested} failed)" if fn.fell_back else "")


def make_train_step(model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig, total_steps: int,
                    amp: torch.dtype | None, compile: bool = False, log: Callable[[str], None] = print,
                    compile_mode: str | None = None):
    """``step(x, y, step_t) -> tensor([loss, task, som])``: forward, backward, optimizer step.

    With ``compile`` the loss computation goes through ``torch.compile`` (in ``compile_mode``, see
    :func:`compile_with_fallback`); if compiling fails the step falls back to eager mode with a
    message (never silently different maths)."""
    def eager(x, y, step_t):
        return loss_terms(model, cfg, x, y, step_t, total_steps, amp)

    losses = compile_with_fallback(eager, log, compile_mode) if compile else eager

    def step(x: torch.Tensor, y: torch.Tensor, step_t: torch.Tensor) -> torch.Tensor:
        loss, task, som = backward_with_fallback(losses, lambda: losses(x, y, step_t), opt)
        opt.step()
        return torch.stack([loss.detach(), task.detach(), som.detach()])

    step.losses = losses        # for compile_note
    return step


# ----------------------------------------------------------------------------- training

def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: ``/proc/self/clear_refs`` ← 5, which
    resets VmHWM). Returns False where that is not possible; the peak is then process-wide."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vm_hwm_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20          # kB → GiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_memory(device: torch.device, rss_window: bool) -> dict[str, float | str]:
    """Peak memory of this run: CUDA max allocated, and the peak resident set size — since the
    run started when ``rss_window`` (VmHWM was reset), else the process's lifetime maximum."""
    hwm = _vm_hwm_gb() if rss_window else None
    if hwm is not None:
        out: dict[str, float | str] = {"process_max_rss_gb": round(hwm, 3), "rss_scope": "run"}
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB on Linux
        out = {"process_max_rss_gb": round(rss, 3), "rss_scope": "process"}
    if device.type == "cuda":
        out["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 4)
    return out


def train(cfg: RunConfig, *, results=None, data_root=None, device=None, force: bool = False,
          progress: bool = True, snapshot_epochs: tuple[int, ...] = (),
          stop_after_steps: int | None = None, deadline: float | None = None,
          skip_unfinishable: bool = False, log: Callable[[str], None] = print,
          on_epoch: Callable[[dict], None] | None = None, repeat: str | None = None) -> dict:
    """Train one configuration and return its run record (also written to ``results/``).

    An existing record for the same config key is returned as is unless ``force``. A checkpoint
    under ``runs/<key>/`` is resumed automatically. ``stop_after_steps`` stops (after saving a
    checkpoint) once that many global steps are done: used to test resume, and by time-budgeted
    GPU scripts; ``deadline`` (a ``time.time()`` value) does the same when the clock passes it.
    With ``skip_unfinishable`` as well, the run gives up early (checkpoint kept) once its
    measured epoch time says it cannot finish before ``deadline`` (see :func:`cannot_finish`); the
    record then says ``"unfinishable": True`` and the projected seconds. ``snapshot_epochs`` keeps
    the weights after those epochs (0 = before training), for the latent-progression figure.
    Ctrl-C or SIGTERM saves a checkpoint after the current step and raises
    :class:`TrainingInterrupted` (a second signal stops at once).
    ``on_epoch`` is called after every epoch with ``{"epoch", "epochs", "step", "total_steps",
    "loss", "epoch_s"}`` (the pipeline turns it into progress lines on the terminal).
    ``repeat`` (a tag such as ``"2threads"``) trains a run that has a record again, under another
    arithmetic order, and files the result as a repeat (:func:`vitsom.records.repeat_path`), with
    its own checkpoint folder; the tables keep using the run's own record."""
    cfg.validate()
    if repeat is not None:
        out_path = repeat_path(cfg, repeat, results)
        if not record_path(cfg, results).exists():
            raise ValueError(f"{cfg.preset} seed {cfg.seed}: a repeat repeats a run that has a record, and "
                             f"{record_path(cfg, results)} does not exist; train it first without --repeat")
        done = out_path if out_path.exists() and not force else None
        marks = {"repeat": repeat}                  # the record says what it is, read on its own too
    else:
        out_path = record_path(cfg, results)
        done = None if force else existing_record_path(cfg, results)   # its own, or the same run under another profile
        marks = {}
    if done is not None:
        if repeat is None and done != out_path:
            log(f"[vitsom] {cfg.preset} seed {cfg.seed}: the same run has a record under another profile, {done} "
                "(equal config but for the profile's name); force=True (--force) trains it again")
        return load_record(done)
    dev = resolve_device(device)
    amp = autocast_dtype(cfg, dev)
    key = cfg.key()
    run_dir = run_dir_of(cfg, repeat)
    ckpt_path = run_dir / "checkpoint.pt"
    t_start = time.perf_counter()
    rss_window = reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data = load_task_data(cfg, data_root)
    if cfg.train.optimizer == "batch-map":      # the classical SOM: no gradient, no optimiser
        from .batch_som import train_batch_map
        return train_batch_map(cfg, data, dev, t_start=t_start, rss_window=rss_window, out_path=out_path,
                               run_dir=run_dir, extra=marks, progress=progress, stop_after_steps=stop_after_steps,
                               deadline=deadline, log=log)
    norm = input_norm(cfg, dev)
    if isinstance(data.train, vdata.ImageArrays):
        batches = ArrayBatches(data.train, cfg.train.batch_size, dev, cfg.seed,
                               *(norm if norm is not None else (None, None)))
    else:
        batches = LoaderBatches(data.train, cfg.train.batch_size, dev, cfg.seed)
    steps_per_epoch = batches.steps_per_epoch
    total_steps = steps_per_epoch * cfg.train.epochs

    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev)
    opt = make_optimizer(cfg, model, dev)
    base_lr = opt.param_groups[0]["lr"]
    train_step = make_train_step(model, opt, cfg, total_steps, amp,
                                 compile=cfg.train.compile and dev.type == "cuda", log=log)
    step_t = torch.zeros((), device=dev)          # the step counter lives on the device: no sync

    step, history, train_time = 0, [], 0.0
    train_cpu: float | None = 0.0       # the process's CPU time over the same intervals (None: unknown)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck.get("key") != key:
            raise RuntimeError(f"checkpoint {ckpt_path} belongs to another config; delete it to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, train_time = ck["step"], ck["history"], ck["train_time_s"]
        train_cpu = ck.get("train_cpu_s")          # absent in checkpoints from before it was measured
        log(f"[vitsom] resuming {cfg.preset} ({key}) at step {step}/{total_steps}")
    if 0 in snapshot_epochs and step == 0:
        atomic_torch_save(model.state_dict(), run_dir / "epoch_0.pt")

    clock = CheckpointClock(cfg.train.checkpoint_every_s)

    def save_checkpoint() -> None:
        clock.save(lambda: atomic_torch_save(
            {"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "history": history, "train_time_s": train_time, "train_cpu_s": train_cpu}, ckpt_path))

    def interrupted_by(signal_name: str) -> TrainingInterrupted:
        return TrainingInterrupted(
            f"{cfg.preset} seed {cfg.seed}: stopped by {signal_name} at step {step} of {total_steps}; its "
            f"checkpoint is {ckpt_path}: run the same command again to resume there")

    check_every = 1 if dev.type == "cpu" else 50
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=step, desc=f"{cfg.preset} s{cfg.seed}", unit="step",
                   dynamic_ncols=True, leave=False)
    model.train()
    s = cfg.som
    epochs_here = 0
    with stop_requests(log) as signals:     # Ctrl-C / SIGTERM: checkpoint at the next step's end, then stop
        while step < total_steps:
            epoch, start = divmod(step, steps_per_epoch)
            t_whole_epoch = time.perf_counter()
            factor = lr_factor(epoch, cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.min_lr) \
                if cfg.train.schedule == "cosine" else 1.0
            for g in opt.param_groups:
                g["lr"] = base_lr * factor
            sums = torch.zeros(3, device=dev)   # loss, task loss, som loss (summed on device: no sync)
            n_in_epoch, t_epoch, c_epoch = 0, time.perf_counter(), time.process_time()
            for x, y in batches.epoch(epoch, start):
                step_t.fill_(step)
                sums += train_step(x, y, step_t)
                step += 1
                n_in_epoch += 1
                if step % check_every == 0 and not torch.isfinite(sums).all():
                    raise NonFiniteLossError(
                        f"{cfg.preset} (seed {cfg.seed}): the loss became non-finite at or before step {step} "
                        f"(epoch {epoch}); lower train.lr or som.gamma"
                        + (f" (the last good checkpoint is {ckpt_path})" if ckpt_path.exists() else ""))
                if bar is not None:
                    bar.update(1)
                every = cfg.train.checkpoint_every
                stop = (stop_after_steps is not None and step >= stop_after_steps) or \
                    (deadline is not None and time.time() > deadline) or bool(signals)
                if (every and step % every == 0 and clock.due()) or stop:
                    train_time += time.perf_counter() - t_epoch
                    train_cpu = train_cpu + time.process_time() - c_epoch if train_cpu is not None else None
                    t_epoch, c_epoch = time.perf_counter(), time.process_time()
                    save_checkpoint()
                    if stop:
                        if bar is not None:
                            bar.close()
                        if signals:
                            raise interrupted_by(signals[0])
                        return {"interrupted": True, "step": step, "checkpoint": str(ckpt_path)}
            train_time += time.perf_counter() - t_epoch
            train_cpu = train_cpu + time.process_time() - c_epoch if train_cpu is not None else None
            v = (sums / max(n_in_epoch, 1)).tolist()
            if not all(math.isfinite(a) for a in v):
                raise NonFiniteLossError(f"{cfg.preset} (seed {cfg.seed}): non-finite loss in epoch {epoch}; "
                                         "lower train.lr or som.gamma")
            if start == 0:  # a resumed partial epoch only logs its tail; keep history per full epoch
                history.append({"epoch": epoch, "loss": v[0], "task_loss": v[1], "som_loss": v[2],
                                "temperature": float(temperature_at(step - 1, total_steps, s.t_max, s.t_min)),
                                "gamma": float(gamma_at(step - 1, total_steps, s.gamma, s.gamma_warmup)),
                                "lr": opt.param_groups[0]["lr"]})
            else:
                history.append({"epoch": epoch, "loss": v[0], "task_loss": v[1], "som_loss": v[2],
                                "partial_from_step": start})
            if bar is not None:
                bar.set_postfix(loss=f"{v[0]:.4f}")
            if epoch + 1 in snapshot_epochs:
                atomic_torch_save(model.state_dict(), run_dir / f"epoch_{epoch + 1}.pt")
            epochs_here += 1
            if on_epoch is not None:
                on_epoch({"epoch": epoch + 1, "epochs": cfg.train.epochs, "step": step, "total_steps": total_steps,
                          "loss": v[0], "epoch_s": time.perf_counter() - t_whole_epoch})
            late = cannot_finish(time.perf_counter() - t_whole_epoch, cfg.train.epochs - epoch - 1, epochs_here,
                                 deadline) if skip_unfinishable else None
            stop = bool(signals)        # read once: a signal after this is handled at the next step
            if late is not None or stop or clock.due() or step >= total_steps:
                save_checkpoint()       # the last one too: a failed evaluation then does not retrain
            if stop:
                if bar is not None:
                    bar.close()
                raise interrupted_by(signals[0])
            if late is not None:
                if bar is not None:
                    bar.close()
                log(f"[vitsom] {cfg.preset} seed {cfg.seed}: {late:.0f}s more needed, more than the time left; "
                    f"given up at step {step} (checkpoint {ckpt_path})")
                return {"interrupted": True, "unfinishable": True, "projected_s": late, "step": step,
                        "checkpoint": str(ckpt_path)}
    if bar is not None:
        bar.close()

    return finish_run(cfg, model, data, dev, amp, norm, history=history, total_steps=total_steps,
                      batch_size=batches.batch_size, train_time=train_time, t_start=t_start, train_cpu=train_cpu,
                      out_path=out_path, run_dir=run_dir, log=log, rss_window=rss_window,
                      extra={"torch_compile": compile_note(train_step.losses), **clock.summary(), **marks})


def cannot_finish(epoch_s: float, epochs_left: int, epochs_timed: int, deadline: float | None,
                  now: float | None = None) -> float | None:
    """The seconds a run still needs, if that is more than is left before ``deadline``; else None.

    The projection is the last epoch's wall time × (epochs left + 1 for the final evaluation) ×
    1.05. It is made only from the second epoch timed in this process on, because the first one
    carries start-up costs (data transfer, ``torch.compile``) that do not recur."""
    if deadline is None or epochs_timed < 2 or epochs_left <= 0:
        return None
    need = epoch_s * (epochs_left + 1) * 1.05
    left = deadline - (time.time() if now is None else now)
    return need if need > left else None


def cpu_use(cpu_s: float | None, wall_s: float, threads: int | None = None) -> dict:
    """The training's CPU time and its share of what its threads could have used: cpu / (wall × threads).
    Near 1: the run had its cores to itself. Well below 1 on a CPU run: other work shared the cores (or
    the run waited on I/O), so its times are longer than the machine's own speed; on a GPU run the CPU
    mostly waits, and a low share means nothing."""
    if cpu_s is None or wall_s <= 0:
        return {"train_cpu_time_s": None, "cpu_share": None}
    threads = threads or torch.get_num_threads()
    return {"train_cpu_time_s": round(cpu_s, 3), "cpu_share": round(cpu_s / (wall_s * threads), 3)}


def finish_run(cfg: RunConfig, model: nn.Module, data: TaskData, dev: torch.device, amp, norm, *,
               history: list, total_steps: int, batch_size: int, train_time: float, t_start: float,
               train_cpu: float | None = None,
               out_path: Path, run_dir: Path, log: Callable[[str], None] = print, extra: dict | None = None,
               rss_window: bool = False) -> dict:
    """Evaluate a trained model, save its weights in ``run_dir``, write its run record atomically to
    ``out_path``, drop the checkpoint, and return the record."""
    key = cfg.key()
    k = vdata.get_spec(cfg.dataset).num_classes if cfg.task == "clustering" and model.som is not None else 0
    eval_res = {}
    for name, arr in data.eval_sets.items():
        label_from = None
        if name == "test" and cfg.task == "clustering":
            label_from = (eval_res[cfg.split]["_bmu"], labels_of(data.eval_sets[cfg.split]))
        eval_res[name] = evaluate(model, arr, dev, cfg.task, amp, norm, kmeans_k=k, label_from=label_from)
    bmu_labels = ((eval_res[cfg.split]["_bmu"], labels_of(data.eval_sets[cfg.split]))
                  if cfg.task == "clustering" and "_bmu" in eval_res.get(cfg.split, {}) else None)
    for r in eval_res.values():
        r.pop("_bmu", None)
    main = eval_res[cfg.split] if cfg.task == "clustering" else eval_res["test"]
    from .diagnostics import run_diagnostics
    diagnostics = run_diagnostics(model, cfg, data.train, dev, norm, total_steps, bmu_labels)
    rec = {
        "schema": SCHEMA, "key": key, "preset": cfg.preset, "profile": cfg.profile, "seed": cfg.seed,
        "task": cfg.task, "dataset": cfg.dataset, "config": cfg.to_dict(),
        "metrics": {k: v for k, v in main.items() if k != "eval_time_s"},
        "eval": eval_res, "history": history,
        "params": count_parameters(model), "steps": total_steps, "train_samples": len(data.train),
        "git": git_commit(), "device": device_info(dev), "precision": str(amp or "fp32"),
        # SOM distances are fp32 even under bf16 autocast (som.SOMLayer.distances); records without
        # this field were made before, and on a GPU computed them in bf16
        **({"som_distances": "fp32"} if getattr(model, "som", None) is not None else {}),
        "wall_time_s": round(time.perf_counter() - t_start, 3), "train_time_s": round(train_time, 3),
        "train_samples_per_s": round(total_steps * batch_size / max(train_time, 1e-9), 1),
        **cpu_use(train_cpu, train_time),
        "inference_time_s": round(main["eval_time_s"], 3), "peak_memory": _peak_memory(dev, rss_window),
        "diagnostics": diagnostics, "created": now_iso(), **(extra or {}),
    }
    atomic_torch_save({"config": cfg.to_dict(), "model": model.state_dict()}, run_dir / "model.pt")
    atomic_write_json(out_path, rec)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        os.unlink(ckpt_path)
    log(f"[vitsom] {cfg.preset} seed {cfg.seed} ({cfg.profile}): "
        + ", ".join(f"{k}={v:.4f}" for k, v in rec["metrics"].items() if isinstance(v, float))
        + f"  [{rec['wall_time_s']:.0f}s] → {out_path}")
    return rec


def load_trained(key_or_record, device: str | None = "cpu", snapshot: str = "model") -> tuple[ViTSOM, RunConfig]:
    """The trained model of a record (from ``runs/<key>/model.pt``, or ``epoch_N.pt`` snapshots)."""
    from .config import config_from_dict
    key = key_or_record["key"] if isinstance(key_or_record, dict) else key_or_record
    path = runs_root() / key / f"{snapshot}.pt"
    if not path.exists():
        raise FileNotFoundError(f"no trained weights at {path}; rerun the config to recreate them")
    blob = torch.load(path, map_location=device, weights_only=False)
    if "config" in blob:
        cfg, state = config_from_dict(blob["config"]), blob["model"]
    else:
        cfg, state = config_from_dict(key_or_record["config"]), blob
    model = build_model(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg
