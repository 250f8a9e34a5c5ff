"""Run configurations: dataclasses, the paper's recipes as named presets, and size profiles.

A *preset* is the authors' recipe for one dataset (``../shared/reference`` §3; values from their
newest code). A *profile* scales a preset down for a smaller machine (fewer epochs, a fixed subset
of the data) without touching the math: ``smoke`` (seconds on a CPU), ``quick`` (minutes on a CPU)
and ``paper`` (the full recipe).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .som import check_distance, check_topology


@dataclass
class ModelConfig:
    img_size: int = 28
    in_chans: int = 1
    patch: int = 2
    emb_dim: int = 16
    depth: int = 4
    heads: int = 2
    mlp_ratio: float = 4.0
    dec_emb: int = 4
    dec_depth: int = 2
    num_classes: int = 0              # 0 = clustering (autoencoder), > 0 = classification head
    arch: str = "vit"                 # "vit" (ViT-SOM) or a baseline from vitsom.baselines
    hidden: tuple[int, ...] = ()      # baseline layer widths (DESOM: 500, 500, 2000, 10)


@dataclass
class SOMConfig:
    height: int = 40
    width: int = 40
    distance: str = "cosine"
    topology: str = "square"
    t_max: float = 20.0
    t_min: float = 0.001
    gamma: float = 0.005
    gamma_warmup: bool = True         # γ ramps linearly over the first half of training
    som_input: str = "patches"        # "patches" (flattened patch tokens, CLS excluded) or "cls"


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int = 128
    lr: float = 0.01                  # base lr; the effective lr is lr · batch_size / 256
    min_lr: float = 1e-5              # floor on the schedule *factor* (the reference's meaning)
    warmup_epochs: int = 25
    weight_decay: float = 0.05        # ≥2-D ViT weights; 1-D parameters get 0
    som_weight_decay: float = 0.01    # prototypes and head (AdamW's default in the reference)
    label_smoothing: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8                 # Adam(W)'s ε (PyTorch's default, as in the reference)
    optimizer: str = "adamw"          # "adamw" (ViT-SOM), "adam" (DESOM), "batch-map" (classical SOM)
    recon_loss: str = "l1"            # clustering's reconstruction term: "l1" (the authors') or "mse"
    schedule: str = "cosine"          # per-epoch warm-up + cosine ("cosine") or none ("constant")
    lr_batch_scaling: bool = True     # effective lr = lr · batch_size / 256 (the ViT-SOM recipe)
    max_train_samples: int = 0        # 0 = all; else a fixed random subset (profiles use this)
    label_fraction: float = 1.0       # classification: fraction of training labels used
    checkpoint_every: int = 500       # steps between checkpoints (0 = only at the end of epochs)
    # at most one checkpoint per this many seconds (0 = no limit): on a GPU 500 steps take under a
    # second and a 40×40 MNIST checkpoint is 60 MB a seed (0.12 s to write), so saving on every rule
    # would slow a run by tens of percent; a stop (deadline, SIGINT/SIGTERM, give-up) always saves
    checkpoint_every_s: float = 60.0
    precision: str = "auto"           # "fp32", "bf16", or "auto" (bf16 on CUDA, fp32 elsewhere)
    compile: bool = True              # torch.compile the loss on CUDA (never on CPU); see train.py


@dataclass
class RunConfig:
    preset: str
    dataset: str
    split: str = "all"                # clustering: "all" = train+test (the paper's protocol)
    model: ModelConfig = field(default_factory=ModelConfig)
    som: SOMConfig = field(default_factory=SOMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: str = "paper"
    seed: int = 0

    @property
    def task(self) -> str:
        return "clustering" if self.model.num_classes == 0 else "classification"

    def validate(self) -> "RunConfig":
        """Raise ValueError with a clear message for any inconsistent setting."""
        s, t, m = self.som, self.train, self.model
        check_distance(s.distance)
        check_topology(s.topology)
        if s.height < 0 or s.width < 0 or (s.height * s.width == 0 and s.gamma > 0):
            raise ValueError(f"SOM grid must be at least 1×1 (got {s.height}×{s.width}); "
                             "use 0×0 only together with gamma=0 for a plain ViT")
        if s.gamma < 0:
            raise ValueError(f"gamma must be ≥ 0, got {s.gamma}")
        if not (s.t_max > 0 and s.t_min > 0):
            raise ValueError(f"temperatures must be positive, got t_max={s.t_max}, t_min={s.t_min}")
        if s.t_min >= s.t_max:
            raise ValueError(f"t_min must be smaller than t_max, got t_min={s.t_min} ≥ t_max={s.t_max}")
        if s.som_input not in ("patches", "cls"):
            raise ValueError(f"unknown som_input {s.som_input!r}; choose 'patches' or 'cls'")
        if t.epochs < 1 or t.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be ≥ 1, got {t.epochs} and {t.batch_size}")
        if t.lr <= 0:
            raise ValueError(f"lr must be positive, got {t.lr}")
        if t.checkpoint_every < 0 or not t.checkpoint_every_s >= 0:
            raise ValueError(f"checkpoint_every and checkpoint_every_s must be ≥ 0 (0: no step rule, no time "
                             f"limit), got {t.checkpoint_every} and {t.checkpoint_every_s}")
        if not t.eps > 0:
            raise ValueError(f"train.eps (Adam's ε) must be positive, got {t.eps}")
        if not 0 < t.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {t.label_fraction}")
        if t.optimizer not in ("adamw", "adam", "batch-map"):
            raise ValueError(f"unknown optimizer {t.optimizer!r}; choose adamw, adam or batch-map")
        if t.optimizer == "batch-map" and (m.arch != "som" or s.distance != "euclidean"):
            raise ValueError("optimizer 'batch-map' (Kohonen's batch SOM) trains only the raw-pixel SOM with "
                             f"euclidean distance: set model.arch=som and som.distance=euclidean (got arch "
                             f"{m.arch!r}, distance {s.distance!r})")
        if t.recon_loss not in RECON_LOSSES:
            raise ValueError(f"unknown recon_loss {t.recon_loss!r}; choose {' or '.join(RECON_LOSSES)}")
        if t.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {t.schedule!r}; choose cosine or constant")
        if t.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown precision {t.precision!r}; choose auto, fp32 or bf16")
        if m.img_size % m.patch:
            raise ValueError(f"image size {m.img_size} is not divisible by patch {m.patch}")
        if m.emb_dim % m.heads or m.dec_emb % m.heads:
            raise ValueError(f"widths {m.emb_dim}/{m.dec_emb} must be divisible by heads={m.heads}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Short hash of the full config (including seed and profile): names the run record."""
        d = self.to_dict()
        for k in _NOT_IN_KEY:   # execution details that do not change the result
            d["train"].pop(k, None)
        for section, k, default in _KEY_ONLY_OFF_DEFAULT:
            if d[section].get(k) == default:
                d[section].pop(k)
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


_NOT_IN_KEY = ("compile", "checkpoint_every", "checkpoint_every_s")
# Fields added after records existed: they enter the key only when set off their default, so that
# every earlier record keeps its name.
_KEY_ONLY_OFF_DEFAULT = (("train", "eps", 1e-8), ("train", "recon_loss", "l1"))
# The reconstruction term of clustering runs: L1 in the authors' code (ViT-SOM and their DESOM),
# mean squared error in the original DESOM (Forest et al.).
RECON_LOSSES = ("l1", "mse")


# ----------------------------------------------------------------------------- presets

def _clustering(name: str, dataset: str, img: int, grid: int) -> RunConfig:
    return RunConfig(preset=name, dataset=dataset, split="all",
                     model=ModelConfig(img_size=img, in_chans=1, patch=2, emb_dim=16, depth=4, heads=2,
                                       dec_emb=4, dec_depth=2, num_classes=0),
                     som=SOMConfig(height=grid, width=grid, t_max=20.0, t_min=0.001, gamma=0.005),
                     train=TrainConfig(epochs=500, batch_size=128, lr=0.01, min_lr=1e-5))


def _clustering_v1(name: str, dataset: str, img: int) -> RunConfig:
    """The v1-era clustering recipe (old commit c398f1a2, digest §3.4), which probably produced the
    paper's 24×24 numbers: 24×24 map, T 24 → 0.1, γ 0.0005, AdamW lr 5e-4 (× batch/256), warm-up 10,
    weight decay 0, 200 epochs, batch 256, and a constant γ (the γ warm-up came later, digest §2.2).
    Same model as today's recipe: the v1 decoder was as wide as the encoder and its SOM saw the CLS
    token too; those two are not reproduced."""
    c = _clustering(name, dataset, img, 24)
    c.som.t_max, c.som.t_min, c.som.gamma, c.som.gamma_warmup = 24.0, 0.1, 0.0005, False
    c.train.epochs, c.train.batch_size, c.train.lr = 200, 256, 5e-4
    c.train.warmup_epochs, c.train.weight_decay = 10, 0.0
    return c


def _classification(name: str, dataset: str, img: int, chans: int, patch: int, classes: int, grid: int,
                    t_max: float, gamma: float, lr: float, batch: int = 128, tiny: bool = False) -> RunConfig:
    if tiny:  # the SVHN config: the small clustering-style ViT with a 40×40 map
        model = ModelConfig(img, chans, patch, 16, 4, 2, 4.0, 4, 2, classes)
        som = SOMConfig(grid, grid, t_max=t_max, t_min=0.001, gamma=gamma)
        min_lr = 1e-5
    else:     # ViT-Tiny-like: 192-d, 12 layers, 3 heads
        model = ModelConfig(img, chans, patch, 192, 12, 3, 4.0, 96, 2, classes)
        som = SOMConfig(grid, grid, t_max=t_max, t_min=0.1, gamma=gamma)
        min_lr = 1e-6
    return RunConfig(preset=name, dataset=dataset, split="train", model=model, som=som,
                     train=TrainConfig(epochs=500, batch_size=batch, lr=lr, min_lr=min_lr))


def _desom(name: str, dataset: str, img: int, batch: int) -> RunConfig:
    """DESOM as the authors re-implemented it (reference §1.4/§3.5): FC autoencoder 500-500-2000-10,
    SOM 8×8 on the 10-d code, Manhattan, T 8 → 0.1, γ 0.001 without ramp, Adam lr 1e-3 (no batch
    scaling, no schedule, no weight decay), 60 epochs."""
    return RunConfig(preset=name, dataset=dataset, split="all",
                     model=ModelConfig(img_size=img, in_chans=1, num_classes=0, arch="desom",
                                       hidden=(500, 500, 2000, 10)),
                     som=SOMConfig(height=8, width=8, distance="manhattan", topology="square", t_max=8.0,
                                   t_min=0.1, gamma=0.001, gamma_warmup=False),
                     train=TrainConfig(epochs=60, batch_size=batch, lr=1e-3, lr_batch_scaling=False,
                                       optimizer="adam", schedule="constant", warmup_epochs=0,
                                       weight_decay=0.0, som_weight_decay=0.0))


def _raw_som(name: str, dataset: str, img: int) -> RunConfig:
    """The raw-pixel SOM 24×24: the ``*-clustering-24x24`` recipe with the SOM on the pixels
    (no ViT); loss γ·L_som with γ = 1 and no ramp (see ``vitsom.baselines.PixelSOM``)."""
    c = _clustering(name, dataset, img, 24)
    c.model.arch = "som"
    c.som.gamma, c.som.gamma_warmup = 1.0, False
    return c


def _classical_som(name: str, dataset: str, img: int, grid: int) -> RunConfig:
    """The textbook SOM on the pixels (``vitsom.batch_som``): Kohonen's batch map, Euclidean distance,
    Gaussian neighbourhood whose width decays exponentially per epoch from half the map's side to 1
    (the SOM Toolbox ends its fine-tuning at 1), 30 epochs over the whole training set; no γ, no
    learning rate. Same map, data and protocol as ``som-*``; only the training algorithm differs."""
    c = _raw_som(name, dataset, img)
    c.som.height = c.som.width = grid
    c.som.distance, c.som.t_max, c.som.t_min = "euclidean", grid / 2, 1.0
    c.train = TrainConfig(epochs=30, optimizer="batch-map", schedule="constant", warmup_epochs=0,
                          weight_decay=0.0, som_weight_decay=0.0, lr_batch_scaling=False)
    return c


def _resnet34(name: str, recipe: RunConfig) -> RunConfig:
    """ResNet34 from scratch on ``recipe``'s dataset with that ViT-SOM-cls recipe's optimiser,
    schedule, epochs, batch and label smoothing; no SOM (0×0 map, γ 0)."""
    m = recipe.model
    return RunConfig(preset=name, dataset=recipe.dataset, split=recipe.split,
                     model=ModelConfig(img_size=m.img_size, in_chans=m.in_chans, num_classes=m.num_classes,
                                       arch="resnet34"),
                     som=SOMConfig(height=0, width=0, gamma=0.0, gamma_warmup=False),
                     train=copy.deepcopy(recipe.train))


def _build_presets() -> dict[str, RunConfig]:
    p: dict[str, RunConfig] = {}
    for ds, img in (("mnist", 28), ("fmnist", 28), ("usps", 16)):
        p[f"{ds}-clustering"] = _clustering(f"{ds}-clustering", ds, img, 40)
        # The 24×24 row has no config in the authors' repo; we keep the 40×40 recipe and change
        # only the map, so that the grid-size comparison isolates the map.
        p[f"{ds}-clustering-24x24"] = _clustering(f"{ds}-clustering-24x24", ds, img, 24)
        # Equal clusters: an 8×8 map (64 units, as DESOM and SOM-VAE) for a like-for-like comparison.
        p[f"{ds}-clustering-8x8"] = _clustering(f"{ds}-clustering-8x8", ds, img, 8)
        # The paper's 24×24 numbers probably come from this older recipe (the deviations list, item 4).
        p[f"{ds}-clustering-24x24-v1"] = _clustering_v1(f"{ds}-clustering-24x24-v1", ds, img)
    p["cifar10-classification"] = _classification("cifar10-classification", "cifar10", 32, 3, 4, 10, 4, 4.0, 0.01, 5e-4)
    p["cifar100-classification"] = _classification("cifar100-classification", "cifar100", 32, 3, 4, 100, 14, 7.0, 0.5, 1e-3)
    p["flowers17-classification"] = _classification("flowers17-classification", "flowers17", 224, 3, 16, 17, 14, 14.0, 0.5, 1e-3)
    p["svhn-classification"] = _classification("svhn-classification", "svhn", 32, 3, 2, 10, 40, 20.0, 0.05, 1e-3, tiny=True)
    p["tinyimagenet-classification"] = _classification("tinyimagenet-classification", "tinyimagenet", 64, 3, 4, 200, 14, 14.0, 0.5, 1e-3, batch=512)
    p["pathmnist-classification"] = _classification("pathmnist-classification", "pathmnist", 28, 3, 2, 9, 14, 14.0, 0.5, 1e-3)
    # Small-data classification on the data available offline (issue: does the SOM help a ViT?).
    for ds in ("mnist", "fmnist"):
        c = _classification(f"{ds}-classification", ds, 28, 1, 2, 10, 40, 20.0, 0.05, 1e-3, tiny=True)
        p[c.preset] = c
    # Baselines (vitsom.baselines): DESOM and the raw-pixel SOM for clustering, ResNet34 for classification.
    for ds, img, batch in (("mnist", 28, 128), ("fmnist", 28, 256), ("usps", 16, 256)):
        p[f"desom-{ds}"] = _desom(f"desom-{ds}", ds, img, batch)
        p[f"som-{ds}"] = _raw_som(f"som-{ds}", ds, img)
        p[f"ksom-{ds}"] = _classical_som(f"ksom-{ds}", ds, img, 24)
        p[f"ksom-{ds}-8x8"] = _classical_som(f"ksom-{ds}-8x8", ds, img, 8)
    for ds, recipe in (("mnist", "mnist-classification"), ("fmnist", "fmnist-classification"),
                       ("cifar10", "cifar10-classification"), ("cifar100", "cifar100-classification"),
                       ("flowers17", "flowers17-classification"), ("svhn", "svhn-classification"),
                       ("tinyimagenet", "tinyimagenet-classification"), ("pathmnist", "pathmnist-classification")):
        p[f"resnet34-{ds}"] = _resnet34(f"resnet34-{ds}", p[recipe])
    return p


PRESETS: dict[str, RunConfig] = _build_presets()

# name → (epochs, max_train_samples, checkpoint_every)
PROFILES: dict[str, tuple[int | None, int | None, int | None]] = {
    "smoke": (2, 1024, 0),
    "quick": (10, 0, 200),
    "paper": (None, None, None),
}


def get_preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def apply_profile(cfg: RunConfig, profile: str) -> RunConfig:
    """Scale a preset to a profile: fewer epochs and a fixed data subset; warm-up scaled in
    proportion. The model, SOM, loss and schedules' shapes are unchanged."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = copy.deepcopy(cfg)
    epochs, max_samples, ckpt = PROFILES[profile]
    if epochs is not None:
        full = cfg.train.epochs
        cfg.train.epochs = min(epochs, full)
        cfg.train.warmup_epochs = max(1, round(cfg.train.warmup_epochs * cfg.train.epochs / full))
    if max_samples is not None:
        cfg.train.max_train_samples = max_samples
    if ckpt is not None:
        cfg.train.checkpoint_every = ckpt
    cfg.profile = profile
    return cfg


def set_override(cfg: RunConfig, assignment: str) -> RunConfig:
    """Apply ``section.field=value`` (or ``field=value`` for top-level fields) in place.

    Values are parsed as JSON when possible (numbers, true/false, lists), else kept as strings."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key=value, e.g. som.gamma=0.01")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    target, parts = cfg, key.strip().split(".")
    for part in parts[:-1]:
        if not hasattr(target, part):
            raise ValueError(f"unknown config section {part!r} in {key!r}")
        target = getattr(target, part)
    name = parts[-1]
    if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
        fields = ", ".join(f.name for f in dataclasses.fields(target)) if dataclasses.is_dataclass(target) else ""
        raise ValueError(f"unknown config key {key!r}; fields here: {fields}")
    old = getattr(target, name)
    if isinstance(old, bool) and not isinstance(value, bool):
        raise ValueError(f"{key} expects true/false, got {raw!r}")
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if old is not None and not isinstance(value, type(old)):
        raise ValueError(f"{key} expects a {type(old).__name__}, got {raw!r}")
    setattr(target, name, value)
    return cfg


def make_config(preset: str, profile: str = "paper", seed: int = 0, overrides: list[str] | tuple = ()) -> RunConfig:
    """Preset → profile → ``--set`` overrides → validated config."""
    cfg = apply_profile(get_preset(preset), profile)
    cfg.seed = int(seed)
    for o in overrides:
        set_override(cfg, o)
    return cfg.validate()


def config_from_dict(d: dict) -> RunConfig:
    d = copy.deepcopy(d)
    t = d.pop("train")
    t["betas"] = tuple(t.get("betas", (0.9, 0.999)))
    m = d.pop("model")
    m["hidden"] = tuple(m.get("hidden", ()))
    return RunConfig(model=ModelConfig(**m), som=SOMConfig(**d.pop("som")),
                     train=TrainConfig(**t), **d)
