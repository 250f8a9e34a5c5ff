"""Seeds together: train S copies of one small model (different seeds, or variants that share
shapes such as several γ) in one process, as one vectorised model.

The S models' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and the per-seed forward is ``torch.vmap``-ed over them, so
a step does S models' work in a few large kernels instead of S× the kernel launches. Each member
keeps its own initialisation (``torch.manual_seed(seed)`` before building it, as a separate run),
its own data order (the same per-(seed, epoch) permutation as a separate run) and its own AdamW
state: AdamW is elementwise, so AdamW on the stacked tensors is S independent AdamWs. The loss
summed over members has, for each member's parameters, exactly that member's gradient. Results
are therefore the same in distribution as separate runs, and equal up to floating-point
reassociation inside the batched kernels (checked by a test).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from .config import RunConfig
from .records import atomic_torch_save, existing_record_path, load_record, record_path, run_dir, runs_root
from .taskdata import ArrayBatches, input_norm, load_task_data
from .vit import written_out_attention
from .train import (CheckpointClock, NonFiniteLossError, TrainingInterrupted, autocast_dtype, backward_with_fallback,
                    build_model, cannot_finish, compile_note, compile_with_fallback, finish_run, loss_terms,
                    lr_factor, make_optimizer, reset_peak_rss, resolve_device, stop_requests)


# One optimizer is built from the first member's recipe, so these must agree across members.
_SHARED_OPTIMIZER_FIELDS = ("optimizer", "lr", "lr_batch_scaling", "schedule", "warmup_epochs", "min_lr", "betas",
                            "eps", "weight_decay", "som_weight_decay")


def _same_shapes(cfgs: list[RunConfig]) -> None:
    a = cfgs[0]
    for c in cfgs[1:]:
        if (c.model, c.dataset, c.split, (c.som.height, c.som.width, c.som.distance, c.som.topology, c.som.som_input),
                c.train.epochs, c.train.batch_size, c.train.max_train_samples, c.train.label_fraction) != \
           (a.model, a.dataset, a.split, (a.som.height, a.som.width, a.som.distance, a.som.topology, a.som.som_input),
                a.train.epochs, a.train.batch_size, a.train.max_train_samples, a.train.label_fraction):
            raise ValueError("seeds-together needs configs that share model, data and schedule shapes; "
                             f"{a.preset} and {c.preset} differ (run them separately)")
        differ = [k for k in _SHARED_OPTIMIZER_FIELDS if getattr(c.train, k) != getattr(a.train, k)]
        if differ:
            raise ValueError("seeds-together needs one optimizer and learning-rate recipe for all members; "
                             f"train.{', train.'.join(differ)} differ (run them separately)")
        if c.train.label_fraction < 1 and c.seed != a.seed:
            raise ValueError("label_fraction < 1 draws a per-seed label subset; run those seeds separately")


class _Member(nn.Module):
    """Wraps a model so that vmap sees tensors only: returns (loss, task loss, SOM loss)."""

    def __init__(self, model: nn.Module, cfg: RunConfig, total_steps: int, amp) -> None:
        super().__init__()
        self.model, self.cfg, self.total_steps, self.amp = model, cfg, total_steps, amp

    def forward(self, x, y, step_t, gamma):
        cfg = copy.copy(self.cfg)
        cfg.som = copy.copy(cfg.som)
        cfg.som.gamma = 1.0      # γ_t is applied outside, per member (members may differ in γ)
        loss, task, som = loss_terms(self.model, cfg, x, y, step_t, self.total_steps, self.amp)
        return task + gamma * som, task, som


def train_together(cfgs: list[RunConfig], *, results=None, data_root=None, device=None, force: bool = False,
                   progress: bool = True, deadline: float | None = None, skip_unfinishable: bool = False,
                   log: Callable[[str], None] = print) -> list[dict]:
    """Train configs that differ only in seed (and/or γ, T, warm-up) together; one record each.

    Members whose record already exists are skipped (unless ``force``). With ``deadline`` (a
    ``time.time()`` value) training stops at the first epoch end past it, leaving the group's
    checkpoint; the return value is then one ``{"interrupted": True, "step": …}`` dict per member,
    and a later call with the same configs resumes there. ``skip_unfinishable`` gives up earlier,
    as soon as the measured epoch time says the group cannot finish before the deadline
    (:func:`vitsom.train.cannot_finish`); the dicts then carry ``"unfinishable": True``."""
    for c in cfgs:
        c.validate()
    todo = [c for c in cfgs if force or existing_record_path(c, results) is None]
    if not todo:
        return [load_record(existing_record_path(c, results)) for c in cfgs]
    _same_shapes(todo)
    if todo[0].model.arch != "vit" or todo[0].som.distance == "manhattan":
        raise ValueError(f"{todo[0].preset}: seeds-together supports the ViT-SOM model with cosine or euclidean "
                         "distance (the chunked manhattan distance and BatchNorm baselines have no vmap rule); "
                         "run these seeds separately")
    from .taskdata import uses_loader
    if uses_loader(todo[0]):
        raise ValueError(f"{todo[0].preset}: seeds-together runs need a GPU-resident dataset; colour "
                         "classification sets use a DataLoader with augmentation, run their seeds separately")
    dev = resolve_device(device)
    amp = autocast_dtype(todo[0], dev)
    t_start = time.perf_counter()
    rss_window = reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        torch.backends.cuda.matmul.allow_tf32 = True

    datas = [load_task_data(c, data_root) for c in todo]
    norm = input_norm(todo[0], dev)
    nm = norm if norm is not None else (None, None)
    batches = [ArrayBatches(d.train, c.train.batch_size, dev, c.seed, *nm) for d, c in zip(datas, todo)]
    steps_per_epoch = batches[0].steps_per_epoch
    total_steps = steps_per_epoch * todo[0].train.epochs

    models, params, p_buf, opt, vloss = build_together(todo, dev, amp, total_steps)
    if dev.type == "cuda" and todo[0].train.compile:
        vloss = compile_with_fallback(vloss, log)     # one graph for all members' forward and backward
    names = [n for n, _ in models[0].named_parameters()]
    t = todo[0].train
    lr = opt.param_groups[0]["lr"]
    S = len(todo)
    from .som import gamma_at
    step_t = torch.zeros((), device=dev)
    history: list[list[dict]] = [[] for _ in todo]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, desc=f"{todo[0].preset} ×{S}", unit="step", dynamic_ncols=True, leave=False)
    import hashlib
    group_key = hashlib.sha256("".join(sorted(c.key() for c in todo)).encode()).hexdigest()[:12]
    ckpt_path = runs_root() / f"together-{group_key}" / "checkpoint.pt"
    clock = CheckpointClock(t.checkpoint_every_s)
    train_time, step, first_epoch = 0.0, 0, 0
    train_cpu: float | None = 0.0
    if ckpt_path.exists():       # resume at the last finished epoch
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        with torch.no_grad():
            for n in names:
                params[n].copy_(ck["params"][n])
        opt.load_state_dict(ck["optimizer"])
        step, history, train_time = ck["step"], ck["history"], ck["train_time_s"]
        train_cpu = ck.get("train_cpu_s")
        first_epoch = step // steps_per_epoch
        log(f"[vitsom] resuming {S} members of {todo[0].preset} at epoch {first_epoch}")
        if bar is not None:
            bar.update(step)
    with stop_requests(log) as signals:     # Ctrl-C / SIGTERM: checkpoint at this epoch's end, then stop
        for epoch in range(first_epoch, todo[0].train.epochs):
            factor = lr_factor(epoch, t.epochs, t.warmup_epochs, t.min_lr) if t.schedule == "cosine" else 1.0
            for g in opt.param_groups:
                g["lr"] = lr * factor
            sums = torch.zeros(S, 3, device=dev)
            t0, c0 = time.perf_counter(), time.process_time()
            for pairs in zip(*(b.epoch(epoch) for b in batches)):
                x = torch.stack([p[0] for p in pairs])                   # (S, B, C, H, W)
                y = torch.stack([p[1] for p in pairs])
                step_t.fill_(step)
                gammas = torch.stack([torch.as_tensor(gamma_at(step_t, total_steps, c.som.gamma, c.som.gamma_warmup),
                                                      dtype=torch.float32) for c in todo])
                loss, task, som = backward_with_fallback(vloss, lambda: vloss(params, p_buf, x, y, step_t, gammas), opt)
                opt.step()
                sums += torch.stack([loss.detach(), task.detach(), som.detach()], dim=1)
                step += 1
                if bar is not None:
                    bar.update(1)
            train_time += time.perf_counter() - t0
            train_cpu = train_cpu + time.process_time() - c0 if train_cpu is not None else None
            v = (sums / steps_per_epoch).tolist()
            for i, c in enumerate(todo):
                if not all(math.isfinite(a) for a in v[i]):
                    raise NonFiniteLossError(f"{c.preset} (seed {c.seed}): non-finite loss in epoch {epoch}; "
                                             "lower train.lr or som.gamma")
                history[i].append({"epoch": epoch, "loss": v[i][0], "task_loss": v[i][1], "som_loss": v[i][2],
                                   "lr": opt.param_groups[0]["lr"]})
            late = cannot_finish(time.perf_counter() - t0, t.epochs - epoch - 1, epoch + 1 - first_epoch, deadline) \
                if skip_unfinishable else None
            past_deadline = deadline is not None and time.time() > deadline and epoch + 1 < todo[0].train.epochs
            stop = bool(signals)        # read once: a signal after this is handled at the next epoch end
            if late is not None or past_deadline or stop or clock.due() or epoch + 1 == todo[0].train.epochs:
                clock.save(lambda: atomic_torch_save(
                    {"params": {n: params[n].detach() for n in names}, "optimizer": opt.state_dict(), "step": step,
                     "history": history, "train_time_s": train_time, "train_cpu_s": train_cpu}, ckpt_path))
            if stop:
                if bar is not None:
                    bar.close()
                raise TrainingInterrupted(
                    f"{S} members of {todo[0].preset}: stopped by {signals[0]} after epoch {epoch} (step {step} of "
                    f"{total_steps}); the checkpoint is {ckpt_path}: run the same command again to resume there")
            if late is not None:
                if bar is not None:
                    bar.close()
                log(f"[vitsom] {S} members of {todo[0].preset}: {late:.0f}s more needed, more than the time left; "
                    f"given up after epoch {epoch} (checkpoint {ckpt_path})")
                return [{"interrupted": True, "unfinishable": True, "projected_s": late, "key": c.key(),
                         "seed": c.seed, "step": step, "checkpoint": str(ckpt_path)} for c in todo]
            if past_deadline:
                if bar is not None:
                    bar.close()
                log(f"[vitsom] deadline: {S} members of {todo[0].preset} checkpointed after epoch {epoch} "
                    f"(step {step} of {total_steps}) in {ckpt_path}")
                return [{"interrupted": True, "key": c.key(), "seed": c.seed, "step": step,
                         "checkpoint": str(ckpt_path)} for c in todo]
    if bar is not None:
        bar.close()

    recs = []
    for i, (c, model, data) in enumerate(zip(todo, models, datas)):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n][i])
        rec = finish_run(c, model, data, dev, amp, norm, history=history[i], total_steps=total_steps,
                         batch_size=batches[i].batch_size, train_time=train_time, t_start=t_start, train_cpu=train_cpu,
                         out_path=record_path(c, results), run_dir=run_dir(c), log=log,
                         extra={"trained_together": S, "torch_compile": compile_note(vloss), **clock.summary()},
                         rss_window=rss_window)
        recs.append(rec)
    if ckpt_path.exists():
        ckpt_path.unlink()
    done = {r["key"]: r for r in recs}
    return [done.get(c.key()) or load_record(existing_record_path(c, results)) for c in cfgs]


def build_together(cfgs: list[RunConfig], dev: torch.device, amp, total_steps: int):
    """Members built as separate runs would build them, stacked: returns (models, stacked params,
    stacked buffers, optimizer over the stacked params, vmapped loss(params, buffers, x, y, step_t, γ))."""
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)
        models.append(build_model(c).to(dev))
    params, buffers = stack_module_state(models)                 # name → (S, …) leaf tensors
    base = _Member(copy.deepcopy(models[0]).to("meta"), cfgs[0], total_steps, amp)
    opt = make_optimizer(cfgs[0], models[0], dev, tensors=params)
    p_buf = {f"model.{k}": v for k, v in buffers.items()}

    def member_loss(p, b, x, y, step_t, gamma):
        state = {f"model.{k}": v for k, v in p.items()}
        state.update(b)
        # the fused CUDA attention kernels fail under vmap (see vit.written_out_attention)
        with written_out_attention() if dev.type == "cuda" else contextlib.nullcontext():
            return functional_call(base, state, (x, y, step_t, gamma))

    vloss = torch.vmap(member_loss, in_dims=(0, 0, 0, 0, None, 0), randomness="different")
    return models, params, p_buf, opt, vloss
