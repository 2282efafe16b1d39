"""One typed, strict config mirroring ``params.yaml``.

Every section is a frozen dataclass. Loading rejects an unknown or misspelled key, a value
of the wrong type and a value out of range, each with one line naming the dotted key
(``train.lambdas.cyc: expected a number >= 0, got -1``). Ranges and choices live in each
field's metadata, next to the field, so adding a param is one line.

A variant (an ablation, or the GANimation baseline) is a named partial override of the
``model`` and ``train`` sections; :func:`resolve_variant` deep-merges it and validates the
result as strictly as the base.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, cast

import yaml

from dftnet.runtime.errors import ConfigError


def _param(default: Any, doc: str, **rules: Any) -> Any:
    """A field with its default, a one-line meaning and its validation rules."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: default, metadata=dict(doc=doc, **rules))
    return field(default=default, metadata=dict(doc=doc, **rules))


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = _param(0, "seed of identities, expressions and evaluation pairs", min=0)
    n_train_identities: int = _param(40, "identities in the training split", min=1)
    n_test_identities: int = _param(12, "identities in the test split (disjoint from train)", min=1)
    n_val_identities: int = _param(12, "validation identities (disjoint from every other split): the learning curve and "
                               "every recipe choice read their pairs, never the test pairs", min=1)
    n_judge_identities: int = _param(64, "the AU judge's own identities, disjoint from every GAN split", min=2)
    images_per_identity: int = _param(12, "expressions rendered per identity", min=1)
    pairs_per_test_identity: int = _param(10, "paired (source, target, ground truth) edits per test (and validation) identity",
                                      min=1)


@dataclass(frozen=True)
class FolderConfig:
    images: str = _param("", "folder of face images (jpg/png), named <id>.<ext>")
    aus: str = _param("", "AU table: OpenFace CSV(s) folder or file, GANimation aus_openface.pkl, or plain CSV")
    train_ids: str = _param("", "file listing training ids, one per line")
    test_ids: str = _param("", "file listing test ids, one per line")
    val_ids: str = _param("", "file listing validation ids, disjoint from train and test: the learning curve's pairs "
                      "('' = none; then train.curve_every must be 0)")
    pairs_per_test_image: int = _param(1, "evaluation edits per test image (targets drawn from other test images)", min=1)
    seed: int = _param(0, "seed of the evaluation pairs", min=0)


@dataclass(frozen=True)
class PhotosConfig:
    images: str = _param("", "folder of raw photos (any size, colour or grey); a face is found, aligned and labelled in each")
    labels: str = _param("", "optional CSV image,emotion (neutral faces set the annotator's zero); '' = none")
    landmarker: str = _param("", "MediaPipe Face Landmarker bundle (.task with blendshapes)")
    neutral_label: str = _param("neutral", "the emotion label of neutral faces in `labels`")
    n_test: int = _param(120, "test people, one photo each: the evaluation's sources", min=2)
    n_val: int = _param(64, "validation people, one photo each, disjoint from every other split: the learning curve's "
                    "sources (0 = none; then train.curve_every must be 0)", min=0)
    n_judge: int = _param(2000, "photos the AU judge trains on, of people no GAN sees (0 = the judge shares the "
                      "GANs' training split)", min=0)
    n_train: int = _param(0, "photos the GANs train on (0 = every photo left)", min=0)
    max_per_identity: int = _param(10, "at most this many photos of one person in the judge and train splits", min=1)
    pairs_per_test_image: int = _param(1, "evaluation edits per test photo (targets: other test photos' AUs)", min=1)
    seed: int = _param(0, "seed of the splits and pairs", min=0)
    workers: int = _param(2, "processes detecting faces (one Face Landmarker each)", min=1, max=256)
    openface_images: str = _param("", "photos with OpenFace AUs, to check the annotator against ('' = no check)")
    openface_aus: str = _param("", "their AU table (GANimation aus_openface.pkl, OpenFace CSV, or plain CSV)")


@dataclass(frozen=True)
class DataConfig:
    root: str = _param("data/faces", "prepared dataset in the canonical on-disk format")
    image_size: int = _param(64, "square side in px at which every stage works", min=16, max=1024)
    source: str = _param("synthetic", "synthetic: render the embedded default; folder: your aligned crops and AU table; "
                     "photos: raw photos, aligned and labelled with MediaPipe", choices=("synthetic", "folder", "photos"))
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    folder: FolderConfig = field(default_factory=FolderConfig)
    photos: PhotosConfig = field(default_factory=PhotosConfig)


# -------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    generator: str = _param("dftnet", "generator family", choices=("dftnet", "ganimation"))
    base_channels: int = _param(64, "channels after the 7x7 stem; doubled at each downsampling", min=4)
    n_down: int = _param(2, "stride-2 convolutions in E (and upsamplings in F and T)", min=1, max=4)
    n_res_blocks: int = _param(6, "residual blocks at the bottleneck", min=0)
    texture: bool = _param(True, "DFT-Net: use the texture decoder T (false = warp_only: output X_a)")
    skip: bool = _param(True, "DFT-Net: skip connections from E into T")
    texture_upsample: str = _param("transpose", "DFT-Net: T's upsampling, 4x4 stride-2 transposed convs (GANimation's) "
                               "or nearest x2 resize + 3x3 conv", choices=("transpose", "resize"))
    flow_deadzone: float = _param(0.0, "DFT-Net remedy (not in the paper): flow vectors shorter than this many pixels "
                              "become exactly 0 (soft threshold, gradient straight through), so untouched pixels are "
                              "copied, not resampled; 0 = the paper's warp", min=0.0)
    flow_deadzone_eval: float = _param(0.0, "DFT-Net remedy (not in the paper): the flow dead zone in pixels once trained "
                                   "(evaluation, reports, dftnet edit), in place of flow_deadzone; training never "
                                   "sees it; 0 = flow_deadzone throughout", min=0.0)
    flow_gate_eval: float = _param(0.0, "DFT-Net remedy (not in the paper): once trained, after the dead zone, flow vectors "
                               "shorter than this many pixels become 0 and those longer than twice it keep their "
                               "length, ramping between (a gate, not a shrink: the edit's long flows stay as "
                               "trained); training never sees it; 0 = off", min=0.0)
    attention_stretch: float = _param(0.0, "remedy (not in either paper): the attention sigmoid stretched by this much "
                                  "beyond [0, 1] and clipped, so A reaches exactly 0 and 1 and the composite can pass "
                                  "a pixel through untouched; 0 = the plain sigmoid", min=0.0, max=1.0)
    change_deadzone: float = _param(0.0, "remedy (not in either paper): a pixel whose edit changes no channel by more than "
                                "this ([0, 1] intensity) is copied from the source, ramping to the full change at twice "
                                "that (gradient straight through); 0 = the papers' output", min=0.0, max=0.5)
    change_deadzone_eval: float = _param(0.0, "remedy (not in either paper): the change dead zone once trained (evaluation, "
                                     "reports, dftnet edit), in place of change_deadzone; training never sees it; "
                                     "0 = change_deadzone throughout", min=0.0, max=0.5)
    critic_channels: int = _param(64, "channels of the critic's first conv; doubled per layer up to 2048", min=4)
    critic_layers: int = _param(6, "4x4 stride-2 convs in the critic (GANimation: 6 at 128 px)", min=2, max=8)


# -------------------------------------------------------------------------- train
@dataclass(frozen=True)
class LambdaConfig:
    gp: float = _param(10.0, "WGAN-GP gradient penalty, Eq. (6)", min=0.0)
    adv: float = _param(1.0, "adversarial term, Eq. (6)", min=0.0)
    cond: float = _param(4000.0, "AU conditional term, Eq. (7); applied / batch_size as GANimation's code", min=0.0)
    cyc: float = _param(10.0, "cycle consistency, Eq. (8)", min=0.0)
    tv: float = _param(1e-4, "total variation of the flow Phi, Eq. (9)", min=0.0)
    att: float = _param(1.0, "attention term, Eq. (10) (GANimation: mean of its mask)", min=0.0)
    att_tv: float = _param(0.0, "total variation of the attention mask (GANimation's mask smoothness)", min=0.0)
    flow: float = _param(0.0, "remedy (not in the paper): mean length of the flow Phi in pixels, so that what should "
                     "not move does not (Eq. (9) penalises only the flow's gradients); 0 = the paper's", min=0.0)
    idt: float = _param(0.0, "remedy (not in either paper): L1 between the source and G(source, its own AUs), so that "
                        "an edit asked for no change makes none (CycleGAN's identity term); 0 = the papers'", min=0.0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _param(30, "passes over the training split", min=1)
    decay_epochs: int = _param(10, "last epochs over which the learning rate decays linearly to 0", min=0)
    batch_size: int = _param(16, "images per step", min=1)
    lr: float = _param(1e-4, "Adam learning rate of the generator", min=0.0)
    lr_critic: float = _param(1e-4, "Adam learning rate of the critic D (GANimation: the same as the generator's)", min=0.0)
    beta1: float = _param(0.5, "Adam beta1", min=0.0, max=1.0)
    beta2: float = _param(0.999, "Adam beta2", min=0.0, max=1.0)
    n_critic: int = _param(5, "critic steps per generator step", min=1)
    critic_warmup: int = _param(0, "remedy (not in either paper): critic steps on Eq. (7)'s real-face term alone (D_C "
                                "regresses the training faces' AUs; no fakes, no D_A) before the first generator step, "
                                "so Eq. (7) points the generator somewhere from its first step; 0 = none", min=0)
    au_noise: float = _param(0.1, "uniform noise (in [0,1] AU units) added to target AUs, as GANimation", min=0.0)
    flip: bool = _param(True, "random horizontal flips")
    checkpoint_every: int = _param(5, "epochs between full-state checkpoints", min=1)
    log_every: int = _param(10, "generator steps between log rows", min=1)
    curve_every: int = _param(0, "generator steps between learning-curve points (the AU judge reads edits of "
                          "held-out pairs; it never gives gradients); 0 = no curve", min=0)
    curve_pairs: int = _param(64, "held-out test pairs edited at each learning-curve point (the first ones)", min=1)
    ema: float = _param(0.0, "decay of an exponential moving average of the generator's weights, kept beside the "
                        "trained ones and evaluated in their place (a remedy; neither paper's code has one): at "
                        "generator step n the decay is min(ema, (1 + n) / (10 + n)); 0 = off", min=0.0, max=0.99999)
    lambdas: LambdaConfig = field(default_factory=LambdaConfig)


# ------------------------------------------------------------------ judge, eval
@dataclass(frozen=True)
class JudgeConfig:
    seed: int = _param(0, "seed of the AU judge's training", min=0)
    epochs: int = _param(15, "passes over the training split", min=1)
    batch_size: int = _param(32, "images per step", min=1)
    lr: float = _param(1e-3, "Adam learning rate", min=0.0)
    base_channels: int = _param(32, "channels of the first conv", min=4)
    val_fraction: float = _param(0.15, "share of training identities held out for the judge's own quality", min=0.0, max=0.9)


@dataclass(frozen=True)
class EvalConfig:
    seed: int = _param(0, "seed for bootstrap resampling and timing inputs", min=0)
    batch_size: int = _param(64, "images per generator pass when editing", min=1)
    bootstrap: int = _param(1000, "bootstrap resamples for 95% confidence intervals", min=10)
    timing_runs: int = _param(50, "timed passes per batch size", min=5)
    timing_warmup: int = _param(5, "untimed passes before timing", min=0)
    timing_batch_sizes: list = _param([1, 64], "batch sizes timed")
    fid_weights: str = _param("", "explicit path to pytorch-fid's pt_inception-2015-12-05 weights ('' = torch hub cache)")
    lpips_weights: str = _param("", "explicit folder holding alexnet-owt-*.pth and lpips alex.pth ('' = standard locations)")
    identity: bool = _param(True, "compute dlib identity distances (needs dlib-bin + face-recognition-models)")


@dataclass(frozen=True)
class ComputeConfig:
    threads: int = _param(2, "intra-op CPU threads of the judge, timing, evaluate and report stages. Part of the "
                      "result: float sums split over threads round differently, so it is fixed here, never "
                      "taken from the machine", min=1, max=256)
    train_threads: int = _param(1, "intra-op CPU threads of one training run (part of its result, as threads); "
                            "seeds train in parallel, cores // train_threads at a time", min=1, max=256)
    train_processes: int = _param(1, "processes one training run is spread over, data parallel (torchrun: gloo on the "
                              "CPU, nccl on GPUs); the global batch stays train.batch_size. 1 = one process, "
                              "and the seeds of a variant in parallel", min=1, max=1024)
    deterministic: bool = _param(True, "torch.use_deterministic_algorithms on the CPU: a kernel without a "
                             "deterministic implementation stops the run instead of drifting")
    precision: str = _param("auto", "training and timing numerics: fp32 (paper-faithful), bf16 (autocast; losses, "
                        "and warp still fp32), auto = bf16 on CUDA, fp32 on the CPU (dftnet/nets/accel.py)",
                        choices=("auto", "fp32", "bf16"))
    penalty_precision: str = _param("autocast", "under bf16: the gradient penalty's critic pass and double backward "
                                "under autocast like the rest, or in fp32 (benchmarks/bench_precision.py measures "
                                "both; docs/scaling.md)", choices=("autocast", "fp32"))
    channels_last: str = _param("auto", "NHWC images and conv weights: enabled, disabled, auto = enabled on CUDA",
                            choices=("auto", "enabled", "disabled"))
    compile: str = _param("auto", "torch.compile the generator (the critic stays eager: double backward): enabled, "
                      "disabled, auto = enabled on CUDA", choices=("auto", "enabled", "disabled"))


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    variants: dict = _param({}, "name -> partial override of the model and train sections")
    seeds: list = _param([0], "training seeds; every variant is trained once per seed")
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)


# ------------------------------------------------------------------------ loading
def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list", dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


def _check_scalar(value: Any, tp: Any, meta: Mapping[str, Any], key: str) -> Any:
    # bool is an int in Python; a YAML `true` must not pass for an integer or a number.
    ok = (isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))) or (
        tp is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is float:
        value = float(value)
        if not math.isfinite(value):  # .nan and .inf would pass every range check below
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: expected one of {', '.join(meta['choices'])}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{key}: expected a value >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{key}: expected a value <= {meta['max']}, got {value!r}")
    return value


def from_mapping(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values."""
    where = prefix.rstrip(".") or "params"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, value in data.items():
        tp, meta, key = hints[name], fields[name].metadata, f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            values[name] = from_mapping(cast(type, tp), value, key + ".")  # a field's type: a class, never an instance
        else:
            values[name] = _check_scalar(value, tp, meta, key)
    return cls(**values)


def _deep_merge(base: dict, override: Mapping, key: str) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v, f"{key}.{k}")
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class RunConfig:
    """What one training run needs: the resolved model and train sections of a variant."""

    variant: str
    seed: int
    image_size: int
    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        """Every setting, but a later remedy (:data:`RECORDED_ONLY_WHEN_ON`) only when it is on:
        the records of the runs made before it (config.json, checkpoints) keep their bytes, and
        :func:`run_config_from_dict` reads its absence as off."""
        d = dataclasses.asdict(self)
        for *groups, key in RECORDED_ONLY_WHEN_ON:
            node = d
            for group in groups:
                node = node[group]
            if not node[key]:
                del node[key]
        return d


# Settings added after runs were recorded, whose off value is the papers' recipe (paths into
# RunConfig.to_dict()).
RECORDED_ONLY_WHEN_ON = (("train", "lambdas", "idt"), ("model", "change_deadzone"), ("train", "ema"),
                         ("train", "critic_warmup"), ("model", "flow_deadzone_eval"), ("model", "flow_gate_eval"),
                         ("model", "change_deadzone_eval"))


def _variant_override(params: Params, name: str) -> Mapping:
    if name not in params.variants:
        raise ConfigError(f"variants.{name}: unknown variant (known: {', '.join(params.variants)})")
    override = params.variants[name] or {}
    where = f"variants.{name}"
    if not isinstance(override, Mapping):
        raise ConfigError(f"{where}: expected a mapping of model/train overrides, got {override!r}")
    extra = sorted(set(override) - {"model", "train"})
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown key (a variant overrides only model and train)")
    return override


def resolve_model(params: Params, name: str) -> ModelConfig:
    """The base ``model`` section with variant ``name``'s model override merged in (the
    architecture alone: what timing and FLOPs depend on)."""
    override, where = _variant_override(params, name), f"variants.{name}"
    return from_mapping(ModelConfig, _deep_merge(dataclasses.asdict(params.model), override.get("model") or {}, where),
                        f"{where}.model.")


def resolve_variant(params: Params, name: str, seed: int) -> RunConfig:
    """The base ``model``/``train`` sections with variant ``name``'s override merged in."""
    override, where = _variant_override(params, name), f"variants.{name}"
    model = resolve_model(params, name)
    train = from_mapping(TrainConfig, _deep_merge(dataclasses.asdict(params.train), override.get("train") or {}, where), f"{where}.train.")
    return RunConfig(variant=name, seed=seed, image_size=params.data.image_size, model=model, train=train)


# The artifact remedies (not in either paper; docs/recipe.md): a variant that sets one of these
# differently from its own family's faithful variant is a remedy of it, not an ablation.
REMEDY_SETTINGS = (("model", "flow_deadzone"), ("model", "flow_deadzone_eval"), ("model", "flow_gate_eval"),
                   ("model", "attention_stretch"), ("model", "change_deadzone"), ("model", "change_deadzone_eval"),
                   ("train", "lambdas", "flow"), ("train", "lambdas", "idt"), ("train", "ema"))


def _setting(run: RunConfig, path: tuple[str, ...]):
    node = run
    for part in path:
        node = getattr(node, part)
    return node


def remedy_of(params: Params, name: str, reference: str = "dftnet", baseline: str = "ganimation") -> str | None:
    """The faithful variant (``reference`` for DFT-Net's family, ``baseline`` for GANimation's)
    that variant ``name`` remedies, or None: it sets no remedy differently from that variant
    (an ablation, or a faithful model), or that variant is not in the params."""
    run = resolve_variant(params, name, params.seeds[0])
    faithful = reference if run.model.generator == "dftnet" else baseline
    if name == faithful or faithful not in params.variants:
        return None
    base = resolve_variant(params, faithful, params.seeds[0])
    return faithful if any(_setting(run, p) != _setting(base, p) for p in REMEDY_SETTINGS) else None


def run_config_from_dict(d: Mapping) -> RunConfig:
    """Rebuild a RunConfig saved with :meth:`RunConfig.to_dict` (checkpoints, run folders)."""
    return RunConfig(variant=str(d["variant"]), seed=int(d["seed"]), image_size=int(d["image_size"]),
                     model=from_mapping(ModelConfig, d["model"], "model."),
                     train=from_mapping(TrainConfig, d["train"], "train."))


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps
    the last value silently, so a duplicated key would quietly override the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise _DuplicateKey(None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every variant is resolved once so a typo fails here."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_StrictLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the params file ({err})") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        what = getattr(err, "problem", None) if isinstance(err, _DuplicateKey) else None
        raise ConfigError(f"{path}: " + (what or "not valid YAML") + (f" (line {line + 1})" if line is not None else "")) from None
    if raw is None:  # an empty file would silently run on the built-in defaults
        raise ConfigError(f"{path}: the params file is empty")
    params = from_mapping(Params, raw)
    if not params.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in params.seeds):
        raise ConfigError(f"seeds: expected a non-empty list of integers >= 0, got {params.seeds!r}")
    duplicates = sorted({s for s in params.seeds if params.seeds.count(s) > 1})
    if duplicates:  # two runs would share one folder and count twice in every CI
        raise ConfigError(f"seeds: seed {duplicates[0]} is listed twice in {params.seeds!r}")
    sizes = params.eval.timing_batch_sizes
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ConfigError(f"eval.timing_batch_sizes: expected a non-empty list of integers >= 1, got {sizes!r}")
    for name in params.variants:
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ConfigError(f"variants.{name}: a variant name uses letters, digits and '_' only")
        resolve_variant(params, name, params.seeds[0])
    if params.train.decay_epochs > params.train.epochs:
        raise ConfigError(f"train.decay_epochs: expected a value <= train.epochs ({params.train.epochs}), got {params.train.decay_epochs}")
    return params

