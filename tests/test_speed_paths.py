"""The fast paths compute the same thing as the plain ones (CPU, fp32)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from plain_vitsom import make_plain, plain_som_loss, plain_step  # noqa: E402

from vitsom import data as vdata  # noqa: E402
from vitsom.config import make_config  # noqa: E402
from vitsom.taskdata import ArrayBatches  # noqa: E402
from vitsom.train import build_model, compile_note, make_optimizer, make_train_step, train  # noqa: E402

TINY = ["train.epochs=2", "train.max_train_samples=256", "train.batch_size=32", "som.height=6", "som.width=6",
        "som.t_max=3.0", "som.t_min=0.05", "train.lr=0.02", "train.warmup_epochs=1", "train.checkpoint_every=0"]


def _arrays(n=96, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return vdata.ImageArrays(torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g),
                             torch.randint(0, 10, (n,), generator=g), "usps", 10)


def test_fast_and_plain_paths_train_identically():
    cfg = make_config("usps-clustering", "smoke", 0, TINY)
    torch.manual_seed(0)
    fast = build_model(cfg)
    plain = make_plain(build_model(cfg))
    plain.load_state_dict(fast.state_dict())
    arrays = _arrays()
    total = 6
    opt_f = torch.optim.AdamW(fast.parameters(), lr=1e-3)
    opt_p = torch.optim.AdamW(plain.parameters(), lr=1e-3)
    step = make_train_step(fast, opt_f, cfg, total, None)
    batches = ArrayBatches(arrays, 32, torch.device("cpu"), 0)
    losses_f, losses_p = [], []
    for i, (x, y) in enumerate(list(batches.epoch(0)) * 2):
        losses_f.append(step(x, y, torch.tensor(float(i)))[0].item())
        losses_p.append(plain_step(plain, opt_p, x, i, total, cfg.som.t_max, cfg.som.t_min, cfg.som.gamma))
    assert losses_f == pytest.approx(losses_p, rel=1e-4)
    x = arrays.float_batch(slice(0, 64))
    with torch.no_grad():
        bmu_fast = fast(x).som.bmu
        _, bmu_plain = plain_som_loss(plain, plain.vit.encode(x)[:, 1:].flatten(1), 1.0)
    assert torch.equal(bmu_fast, bmu_plain)
    # (the key half of the qkv bias has a zero true gradient, softmax being shift-invariant, so
    # Adam turns rounding noise there into ±lr steps; compare the prototypes, which matter)
    torch.testing.assert_close(fast.som.prototypes, plain.som.prototypes, rtol=1e-3, atol=1e-5)


def test_seeds_together_match_separate_runs(usps_root, isolated_results, monkeypatch):
    from vitsom.multiseed import train_together
    cfgs = [make_config("usps-clustering", "smoke", s, TINY) for s in (0, 1)]
    together = train_together(cfgs, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    assert [r["seed"] for r in together] == [0, 1] and all(r["trained_together"] == 2 for r in together)
    monkeypatch.setenv("VITSOM_RESULTS", str(isolated_results / "separate"))
    separate = [train(c, data_root=usps_root, device="cpu", progress=False, log=lambda s: None) for c in cfgs]
    for a, b in zip(together, separate):
        assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-4)
        assert a["metrics"]["recon_l1"] == pytest.approx(b["metrics"]["recon_l1"], rel=1e-3)
        assert a["metrics"]["units_used"] == b["metrics"]["units_used"]
    # the two seeds really differ (own init and data order)
    assert together[0]["history"][0]["loss"] != together[1]["history"][0]["loss"]


def test_seeds_together_stop_at_deadline_and_resume(usps_root, isolated_results, monkeypatch):
    """A time-boxed group stops at an epoch end with a checkpoint and resumes to the same records."""
    import time

    from vitsom.multiseed import train_together
    cfgs = [make_config("usps-clustering", "smoke", s, TINY) for s in (0, 1)]
    cut = train_together(cfgs, data_root=usps_root, device="cpu", progress=False, deadline=time.time() - 1,
                         log=lambda s: None)
    assert all(r.get("interrupted") for r in cut) and cut[0]["step"] == 8      # 256 images / 32 = 8 steps
    assert Path(cut[0]["checkpoint"]).exists()
    resumed = train_together(cfgs, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    assert not Path(cut[0]["checkpoint"]).exists()
    monkeypatch.setenv("VITSOM_RESULTS", str(isolated_results / "straight"))
    straight = train_together(cfgs, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    for a, b in zip(resumed, straight):
        assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-6)
        assert a["metrics"]["purity"] == b["metrics"]["purity"]


def test_seeds_together_checkpoint_on_sigterm_and_resume(usps_root, isolated_results, monkeypatch):
    """SIGTERM during a seeds-together run: the group checkpoints at the epoch's end and raises
    TrainingInterrupted; the rerun resumes there and writes the records an uninterrupted run writes.
    With checkpoint_every_s large, an uninterrupted group saves only after its last epoch."""
    import os
    import signal

    import vitsom.multiseed as M
    from vitsom.train import TrainingInterrupted
    cfgs = [make_config("usps-clustering", "smoke", s, TINY + ["train.checkpoint_every_s=1e9"]) for s in (0, 1)]
    straight = M.train_together(cfgs, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    assert [r["checkpoints_written"] for r in straight] == [1, 1]
    monkeypatch.setenv("VITSOM_RESULTS", str(isolated_results / "cut"))
    real = M.cannot_finish
    calls = []

    def kill_once(*a, **k):          # called once per epoch end when skip_unfinishable is on
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    monkeypatch.setattr(M, "cannot_finish", kill_once)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM after epoch 0 .step 8 of 16"):
        M.train_together(cfgs, data_root=usps_root, device="cpu", progress=False, skip_unfinishable=True,
                         log=lambda s: None)
    resumed = M.train_together(cfgs, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    for a, b in zip(resumed, straight):
        assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-6)
        assert a["metrics"]["purity"] == b["metrics"]["purity"]


def test_seeds_together_rejects_different_shapes():
    from vitsom.multiseed import train_together
    a = make_config("usps-clustering", "smoke", 0, TINY)
    b = make_config("usps-clustering", "smoke", 1, TINY + ["som.height=7"])
    with pytest.raises(ValueError, match="share model"):
        train_together([a, b], device="cpu", progress=False, results="/nonexistent-results")
    # one optimizer serves all members: a member with another Adam ε or decay is refused, not ignored
    c = make_config("usps-clustering", "smoke", 1, TINY + ["train.eps=1e-12", "train.weight_decay=0.1"])
    with pytest.raises(ValueError, match=r"train\.eps, train\.weight_decay differ"):
        train_together([a, c], device="cpu", progress=False, results="/nonexistent-results")


def test_a_failing_compiled_backward_steps_down_and_redoes_the_step(monkeypatch):
    """On the H200 the first seeds-together runs failed in the fused attention's *backward* pass,
    which raises in loss.backward(), outside the compiled call: the step steps down a rung, redoes
    forward and backward, and ends exactly where an eager step ends."""
    cfg = make_config("usps-clustering", "smoke", 0, TINY)

    class BrokenBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("LSE is not correctly aligned (strideH)")

    def fake_compile(fn, **kw):
        def run(*a, **k):
            out = fn(*a, **k)
            return (BrokenBackward.apply(out[0]),) + tuple(out[1:]) if kw["mode"] == "reduce-overhead" else out
        return run
    monkeypatch.setattr(torch, "compile", fake_compile)
    x = _arrays(32).float_batch(slice(0, 32))
    y, t0 = torch.zeros(32, dtype=torch.long), torch.tensor(0.0)
    models = []
    for compiled in (True, False):
        torch.manual_seed(0)
        model = build_model(cfg)
        opt = make_optimizer(cfg, model, torch.device("cpu"))
        messages = []
        step = make_train_step(model, opt, cfg, 10, None, compile=compiled, log=messages.append,
                               compile_mode="reduce-overhead")
        step(x, y, t0)
        step(x, y, t0)
        models.append(model)
        if compiled:
            assert len(messages) == 1 and "LSE" in messages[0] and "mode default" in messages[0]
            assert compile_note(step.losses) == "default (reduce-overhead failed)"
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_compile_failure_steps_down_to_default_then_eager(monkeypatch):
    """A compile mode that fails (CUDA graphs, say) steps down to mode "default", and a failing
    "default" to eager; each step down is logged and the record's note says what ran."""
    cfg = make_config("usps-clustering", "smoke", 0, TINY)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = make_optimizer(cfg, model, torch.device("cpu"))
    broken = set()

    def fake_compile(fn, **kw):
        def run(*a, **k):
            if kw["mode"] in broken:
                raise RuntimeError(f"no {kw['mode']} here")
            return fn(*a, **k)
        modes.append(kw["mode"])
        return run
    modes = []
    monkeypatch.setattr(torch, "compile", fake_compile)
    x = _arrays(32).float_batch(slice(0, 32))
    y, t0 = torch.zeros(32, dtype=torch.long), torch.tensor(0.0)
    for fails, note, said in [({"reduce-overhead"}, "default (reduce-overhead failed)", "compiled in mode default"),
                              ({"reduce-overhead", "default"}, "reduce-overhead (compiling failed: ran eager)",
                               "in eager mode"),
                              (set(), "reduce-overhead", None)]:
        broken.clear()
        broken.update(fails)
        modes.clear()
        messages = []
        step = make_train_step(model, opt, cfg, 10, None, compile=True, log=messages.append,
                               compile_mode="reduce-overhead")
        assert modes == ["reduce-overhead", "default"] and compile_note(step.losses) == "reduce-overhead"
        assert torch.isfinite(step(x, y, t0)).all() and torch.isfinite(step(x, y, t0)).all()
        assert len(messages) == len(fails)                  # one message per step down, not per step
        assert compile_note(step.losses) == note, messages
        assert said is None or said in messages[-1]
    assert compile_note(make_train_step(model, opt, cfg, 10, None).losses) is None     # eager: no note
    # without an explicit mode: VITSOM_COMPILE_MODE, else "default" (compiled once, no second rung)
    modes.clear()
    monkeypatch.setenv("VITSOM_COMPILE_MODE", "max-autotune")
    make_train_step(model, opt, cfg, 10, None, compile=True)
    monkeypatch.delenv("VITSOM_COMPILE_MODE")
    make_train_step(model, opt, cfg, 10, None, compile=True)
    assert modes == ["max-autotune", "default", "default"]


@pytest.mark.parametrize("preset,extra", [("desom-usps", []), ("usps-clustering", ["som.distance=manhattan"])])
def test_seeds_together_refuses_unsupported_models(preset, extra):
    from vitsom.multiseed import train_together
    cfgs = [make_config(preset, "smoke", s, extra) for s in (0, 1)]
    with pytest.raises(ValueError, match="run these seeds separately"):
        train_together(cfgs, device="cpu", progress=False, results="/nonexistent-results")


def test_written_out_attention_matches_fused_sdpa():
    """The seeds-together CUDA path computes attention with plain matmuls (the fused kernels fail
    under vmap there): same outputs and gradients as SDPA, and SDPA again once the context ends."""
    from vitsom import vit
    torch.manual_seed(0)
    attn = vit.Attention(16, 2)
    x = torch.randn(4, 65, 16, requires_grad=True)
    fused = attn(x)
    g_fused = torch.autograd.grad(fused.square().sum(), [x, attn.qkv.weight])
    with vit.written_out_attention():
        assert vit._written_out[0]
        plain = attn(x)
        g_plain = torch.autograd.grad(plain.square().sum(), [x, attn.qkv.weight])
    assert not vit._written_out[0]
    torch.testing.assert_close(plain, fused, atol=1e-5, rtol=1e-4)
    for a, b in zip(g_plain, g_fused):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    # under vmap (how seeds-together calls it), members still match separate calls
    from torch.func import functional_call, stack_module_state
    models = [vit.Attention(16, 2) for _ in range(3)]
    params, bufs = stack_module_state(models)
    base = vit.Attention(16, 2).to("meta")
    with vit.written_out_attention():
        out = torch.vmap(lambda p, xx: functional_call(base, p, (xx,)), in_dims=(0, None))(params, x)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x), atol=1e-5, rtol=1e-4)


def test_gpu_session_asks_the_benchmark_for_rows_it_has():
    """A misspelt row would make bench_train.py exit at once and cost the GPU window its benchmark."""
    import re
    from bench_train import row_names
    script = (Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_session.sh").read_text()
    lists = re.findall(r"(?:rows=|--rows )([a-z0-9_,]+)", script)       # the probe's and the end's
    assert len(lists) == 3, lists
    for rows in lists:
        assert set(rows.split(",")) <= set(row_names(cuda=True, seeds=5)), rows
    assert "default_cudagraphs" in lists[0] and "default_cudagraphs" not in row_names(cuda=False, seeds=5)
    assert "checkpoint" in lists[1] and "checkpoint" in row_names(cuda=False, seeds=5)
