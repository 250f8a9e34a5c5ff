"""SOM formulas against brute-force loop references on random inputs."""
import math

import pytest
import torch

from vitsom import som


def _loop_distance(z, w, kind):
    out = torch.empty(z.shape[0], w.shape[0], dtype=torch.float64)
    for b in range(z.shape[0]):
        for k in range(w.shape[0]):
            zb, wk = z[b].double(), w[k].double()
            if kind == "cosine":
                out[b, k] = 1 - (zb @ wk) / (zb.norm() * wk.norm())
            elif kind == "euclidean":
                out[b, k] = ((zb - wk) ** 2).sum().sqrt()
            else:
                out[b, k] = (zb - wk).abs().sum()
    return out


@pytest.mark.parametrize("kind", som.DISTANCES)
def test_distances_match_loops(kind):
    g = torch.Generator().manual_seed(1)
    z, w = torch.randn(7, 13, generator=g), torch.randn(11, 13, generator=g)
    got = som.pairwise_distance(z, w, kind).double()
    torch.testing.assert_close(got, _loop_distance(z, w, kind), atol=1e-5, rtol=1e-5)


def test_cosine_range_and_self_distance():
    z = torch.randn(5, 9)
    d = som.cosine_distance(z, torch.cat([z, -z]))
    assert torch.allclose(d[:, :5].diagonal(), torch.zeros(5), atol=1e-6)
    assert torch.allclose(d[:, 5:].diagonal(), torch.full((5,), 2.0), atol=1e-6)


@pytest.mark.parametrize("kind", som.DISTANCES)
def test_distance_gradients_match_autograd_reference(kind):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 10, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 10, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(6, 9, generator=g, dtype=torch.float64)
    (som.pairwise_distance(z, w, kind) * upstream).sum().backward()
    z2, w2 = z.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    diff = z2[:, None, :] - w2[None]
    ref = {"cosine": 1 - torch.nn.functional.cosine_similarity(z2[:, None], w2[None], dim=-1),
           "euclidean": diff.pow(2).sum(-1).sqrt(), "manhattan": diff.abs().sum(-1)}[kind]
    (ref * upstream).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_manhattan_is_chunked_and_exact():
    g = torch.Generator().manual_seed(3)
    z, w = torch.randn(16, 50, generator=g), torch.randn(37, 50, generator=g)
    small_chunks = som.manhattan_distance(z, w, max_chunk_bytes=16 * 50 * 4 * 3)  # 3 units per chunk
    torch.testing.assert_close(small_chunks, torch.cdist(z, w, p=1), atol=1e-4, rtol=1e-5)
    # the chunked backward equals autograd through the written-out |z − w| sum
    z, w = z.double().requires_grad_(), w.double().requires_grad_()
    up = torch.randn(16, 37, generator=g, dtype=torch.float64)
    (som.manhattan_distance(z, w, max_chunk_bytes=16 * 50 * 8 * 4) * up).sum().backward()   # 4 units per chunk
    z2, w2 = z.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ((z2[:, None] - w2[None]).abs().sum(-1) * up).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_manhattan_memory_is_bounded_at_paper_size():
    """B=128, K=1600, D=3136 forward+backward: a B×K×D tensor would need 2.6 GB."""
    import tracemalloc  # noqa: F401  (torch CPU allocations are not traced; measure RSS instead)
    import resource
    z = torch.randn(128, 3136, requires_grad=True)
    w = torch.randn(1600, 3136, requires_grad=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = som.manhattan_distance(z, w)
    d.sum().backward()
    grown_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20
    assert d.shape == (128, 1600) and w.grad.shape == w.shape
    assert grown_gb < 2.0, f"peak memory grew by {grown_gb:.2f} GB"


@pytest.mark.parametrize("kind", ["cosine", "euclidean"])
def test_distances_stay_fp32_under_bf16_autocast(kind):
    """On a GPU the model trains under bf16 autocast; the SOM distances must not. A bf16 matmul
    rounds a cosine distance to steps of ~0.004 and makes ‖z‖² + ‖w‖² − 2z·w cancel, which moves BMUs
    (5.4 % of USPS images on a trained pixel SOM). CPU autocast runs matmuls in bf16 the same way."""
    torch.manual_seed(0)
    layer = som.SOMLayer(8, 8, 784, distance=kind)
    z = torch.rand(256, 784, requires_grad=True)
    ref = layer(z, 1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        raw = som.pairwise_distance(z, layer.prototypes, kind)     # what autocast alone would give
        got = layer(z, 1.0)
    assert (raw.float() - ref.distances).abs().max() > 1e-3
    assert got.distances.dtype == torch.float32 and got.loss.dtype == torch.float32
    torch.testing.assert_close(got.distances, ref.distances)
    assert torch.equal(got.bmu, ref.bmu)
    got.loss.backward()
    assert z.grad is not None and z.grad.dtype == torch.float32 and layer.prototypes.grad.dtype == torch.float32


def test_bmu_is_argmin():
    layer = som.SOMLayer(3, 4, 8)
    z = torch.randn(10, 8)
    out = layer(z, 1.0)
    d = _loop_distance(z, layer.prototypes.detach(), "cosine")
    assert torch.equal(out.bmu, d.argmin(1))


@pytest.mark.parametrize("topology", ["square", "hexagonal"])
def test_neighbourhood_matches_loop(topology):
    H, W, T = 4, 5, 1.7
    coords = som.grid_coordinates(H, W, topology)
    table = som.grid_sq_distances(coords)
    bmu = torch.tensor([0, 7, 19, 12])
    h = som.neighbourhood(table, bmu, T)
    for i, b in enumerate(bmu.tolist()):
        rb, cb = divmod(b, W)
        for k in range(H * W):
            r, c = divmod(k, W)
            if topology == "square":
                sq = (r - rb) ** 2 + (c - cb) ** 2
            else:
                x1, y1 = c + 0.5 * (r % 2), r * math.sqrt(3) / 2
                x0, y0 = cb + 0.5 * (rb % 2), rb * math.sqrt(3) / 2
                sq = (x1 - x0) ** 2 + (y1 - y0) ** 2
            assert h[i, k].item() == pytest.approx(math.exp(-sq / (2 * T * T)), rel=1e-5)


def test_hexagonal_grid_has_six_unit_neighbours():
    coords = som.grid_coordinates(6, 6, "hexagonal")
    d = som.grid_sq_distances(coords).sqrt()
    interior = 2 * 6 + 2
    assert int(((d[interior] - 1).abs() < 1e-5).sum()) == 6
    sq = som.grid_sq_distances(som.grid_coordinates(6, 6, "square")).sqrt()
    assert int(((sq[interior] - 1).abs() < 1e-5).sum()) == 4


def test_som_loss_is_mean_of_weighted_distances():
    g = torch.Generator().manual_seed(4)
    d, h = torch.rand(5, 12, generator=g), torch.rand(5, 12, generator=g)
    ref = sum(h[b, k] * d[b, k] for b in range(5) for k in range(12)) / (5 * 12)
    assert som.som_loss(d, h).item() == pytest.approx(ref.item(), rel=1e-6)
    # the paper's printed form (1/N ΣΣ) is K times larger
    assert (h * d).sum(1).mean().item() == pytest.approx(12 * ref.item(), rel=1e-6)


def test_temperature_schedule_endpoints_and_decay():
    S, tmax, tmin = 1000, 20.0, 0.001
    assert som.temperature_at(0, S, tmax, tmin) == pytest.approx(tmax)
    assert som.temperature_at(S - 1, S, tmax, tmin) == pytest.approx(tmin)
    mid = som.temperature_at((S - 1) / 2, S, tmax, tmin)
    assert mid == pytest.approx(math.sqrt(tmax * tmin))       # geometric, not linear or cosine
    ts = [som.temperature_at(t, S, tmax, tmin) for t in range(S)]
    assert all(a > b for a, b in zip(ts, ts[1:]))
    t_tensor = som.temperature_at(torch.tensor(500.0), S, tmax, tmin)
    assert float(t_tensor) == pytest.approx(ts[500], rel=1e-5)


def test_gamma_warmup_ramp():
    S, g = 1000, 0.005
    assert som.gamma_at(0, S, g) == 0.0
    assert som.gamma_at(250, S, g) == pytest.approx(g / 2)
    assert som.gamma_at(500, S, g) == pytest.approx(g)
    assert som.gamma_at(999, S, g) == pytest.approx(g)
    assert som.gamma_at(0, S, g, warmup=False) == g
    assert float(som.gamma_at(torch.tensor(250), S, g)) == pytest.approx(g / 2)


def test_quantization_and_topographic_error_match_loops():
    g = torch.Generator().manual_seed(5)
    H, W = 4, 4
    d = torch.rand(50, H * W, generator=g)
    assert som.quantization_error(d).item() == pytest.approx(d.min(1).values.mean().item())
    for topology, radius in (("square", math.sqrt(2)), ("hexagonal", 1.0)):
        coords = som.grid_coordinates(H, W, topology)
        errors = 0
        for b in range(50):
            order = sorted(range(H * W), key=lambda k: d[b, k].item())
            gap = (coords[order[0]] - coords[order[1]]).norm().item()
            errors += gap > radius + 1e-4
        assert som.topographic_error(d, coords, topology).item() == pytest.approx(errors / 50)


def test_topographic_error_differs_between_square_and_hex():
    # first BMU (1,1), second BMU (0,2): diagonal neighbour on a square grid; on the offset-row
    # hex grid row 1 is shifted right, so (0,2) is at distance 1 from (1,1) too. (0,0) is not.
    coords_sq, coords_hex = som.grid_coordinates(3, 3, "square"), som.grid_coordinates(3, 3, "hexagonal")
    d = torch.full((1, 9), 5.0)
    d[0, 4], d[0, 0] = 0.0, 0.1    # BMU (1,1), second (0,0)
    assert som.topographic_error(d, coords_sq, "square").item() == 0.0
    assert som.topographic_error(d, coords_hex, "hexagonal").item() == 1.0


def test_gradients_reach_prototypes_and_encoder():
    from vitsom.vit import ViTSOM
    torch.manual_seed(0)
    model = ViTSOM(8, 1, 2, 8, 1, 2, 2.0, 4, 1, 0, (3, 3))
    x = torch.rand(4, 1, 8, 8)
    out = model(x, temperature=1.0)
    out.som.loss.backward()
    assert model.som.prototypes.grad is not None and model.som.prototypes.grad.abs().sum() > 0
    assert model.vit.patch_embed.weight.grad.abs().sum() > 0
    assert model.vit.decoder_pred.weight.grad is None  # the SOM loss does not touch the decoder


@pytest.mark.parametrize("bad,match", [
    (dict(distance="chebyshev"), "unknown SOM distance"),
    (dict(topology="triangle"), "unknown SOM topology"),
    (dict(height=0), "at least 1×1"),
])
def test_bad_layer_arguments(bad, match):
    args = dict(height=3, width=3, dim=4)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        som.SOMLayer(**args)


def test_prototype_init_is_normalised_for_cosine_only():
    assert torch.allclose(som.SOMLayer(2, 2, 5).prototypes.norm(dim=1), torch.ones(4))
    w = som.SOMLayer(2, 2, 5, distance="euclidean").prototypes
    assert (w >= 0).all() and (w < 1).all() and not torch.allclose(w.norm(dim=1), torch.ones(4))


def test_cls_som_input_sees_only_the_cls_token():
    """som_input='cls': the SOM's input is the CLS token (emb_dim values), so changing a patch token's
    final value changes nothing the SOM sees, and the SOM loss reaches the CLS token's parameter."""
    from vitsom.vit import ViTSOM
    torch.manual_seed(0)
    model = ViTSOM(8, 1, 2, 8, 1, 2, 2.0, 4, 1, 0, (3, 3), som_input="cls")
    assert model.latent_dim == 8 and model.som.prototypes.shape == (9, 8)
    out = model(torch.rand(4, 1, 8, 8), temperature=1.0)
    assert torch.equal(out.z, out.tokens[:, 0])
    tokens = out.tokens.detach().clone()
    tokens[:, 1:] += 1.0
    assert torch.equal(model.latent(tokens), out.z.detach())
    out.som.loss.backward()
    assert model.vit.cls_token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="som_input"):
        ViTSOM(8, 1, 2, 8, 1, 2, 2.0, 4, 1, 0, (3, 3), som_input="mean")
