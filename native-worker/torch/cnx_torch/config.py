"""Job config (version 1): parsing and validation of every field; unknown keys are errors.

{"version": 1, "kind": "pretrain" | "finetune" | "eval", "runDir": abs path,
 "model": {"arch", "numClasses", "dropPathRate"=0, "headInitScale"=1, "inputSize"=224},
 "fcmae": {"maskRatio"=0.6, "patchSize"=32, "decoderDim"=512, "decoderDepth"=1, "normPixLoss"=true},
 "data": {"manifest": abs path, "batchSize", "workers"=2, "seed"=0, "evalSplit"="val",
          "augment": {"scale", "ratio"=[3/4, 4/3], "hflip"=0.5, "padCrop"=null, "randAugment", "reprob",
                      "remode"="pixel", "recount"=1}},
   (augment defaults by kind, augment.default_augment: pretrain scale [0.2, 1], no RandAugment, reprob 0;
    finetune scale [0.08, 1], "rand-m9-mstd0.5-inc1", reprob 0.25)
 "optim": {"lr", "totalSteps", "weightDecay"=0.05, "betas"=[0.9, 0.999], "eps"=1e-8, "layerDecay"=null,
           "layerDecayType"=null (auto: "group" for base/large/huge, else "single"), "clipGrad"=null,
           "warmupSteps"=0, "minLr"=0, "accumSteps"=1, "labelSmoothing"=0, "mixup"=0, "cutmix"=0,
           "emaDecay"=null},
 "init": {"weights": path | null}, "resume": path | null, "device"="auto", "precision"="fp32",
 "channelsLast"=true, "compile"=false, "checkpointEverySteps", "evalEverySteps"=null, "logEverySteps"=1,
 "devices"=null (GPU indices [0, 1] or a count; one process per GPU), "nproc"=null (processes per node; on
 CPUs data-parallel with gloo)}
`optim` and `checkpointEverySteps` are required for pretrain/finetune; eval needs `init.weights`.
`lr` is the peak learning rate itself (common/resolve-job.ts resolves it with the paper's batch/256 rule). `data.batchSize`
is the global micro-batch, split evenly over the processes (see distributed.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .augment import ERASE_MODES, Augment, default_augment, parse_rand_augment
from .models import parse_arch

KINDS = ("pretrain", "finetune", "eval")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
_MISSING = object()


class ConfigError(ValueError):
    """An invalid field: `field` is its dotted path, e.g. `optim.lr`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class _Fields:
    """Reads typed fields from one JSON object, remembering which keys were read."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(path, "must be an object")
        self.raw: Dict[str, Any] = raw
        self.path = path
        self.seen: set = set()

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def value(self, key: str, default: Any = _MISSING) -> Any:
        self.seen.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            raise ConfigError(self._name(key), "is required")
        return default

    def opt_number(self, key: str, default: Any = _MISSING, lo: Optional[float] = None, hi: Optional[float] = None,
                   lo_open: bool = False) -> Optional[float]:
        """A number or null; bounds are inclusive unless `lo_open`."""
        value = self.value(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(self._name(key), f"must be a number, got {value!r}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise ConfigError(self._name(key), f"must be {'>' if lo_open else '>='} {lo}, got {value}")
        if hi is not None and value > hi:
            raise ConfigError(self._name(key), f"must be <= {hi}, got {value}")
        return float(value)

    def number(self, key: str, default: Any = _MISSING, lo: Optional[float] = None, hi: Optional[float] = None,
               lo_open: bool = False) -> float:
        value = self.opt_number(key, default, lo, hi, lo_open)
        if value is None:
            raise ConfigError(self._name(key), "must be a number, got null")
        return value

    def opt_integer(self, key: str, default: Any = _MISSING, lo: Optional[int] = None) -> Optional[int]:
        value = self.value(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self._name(key), f"must be an integer, got {value!r}")
        if lo is not None and value < lo:
            raise ConfigError(self._name(key), f"must be >= {lo}, got {value}")
        return value

    def integer(self, key: str, default: Any = _MISSING, lo: Optional[int] = None) -> int:
        value = self.opt_integer(key, default, lo)
        if value is None:
            raise ConfigError(self._name(key), "must be an integer, got null")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.value(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self._name(key), f"must be true or false, got {value!r}")
        return value

    def opt_choice(self, key: str, choices: Tuple[str, ...], default: Any = _MISSING) -> Optional[str]:
        value = self.value(key, default)
        return None if value is None else self._check_choice(key, value, choices)

    def choice(self, key: str, choices: Tuple[str, ...], default: Any = _MISSING) -> str:
        return self._check_choice(key, self.value(key, default), choices)

    def _check_choice(self, key: str, value: Any, choices: Tuple[str, ...]) -> str:
        if value not in choices:
            raise ConfigError(self._name(key), f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def string(self, key: str, default: Any = _MISSING) -> str:
        value = self.value(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(self._name(key), f"must be a non-empty string, got {value!r}")
        return value

    def opt_abs_path(self, key: str, default: Any = _MISSING) -> Optional[str]:
        value = self.value(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not os.path.isabs(value):
            raise ConfigError(self._name(key), f"must be an absolute path, got {value!r}")
        return value

    def abs_path(self, key: str, default: Any = _MISSING) -> str:
        value = self.opt_abs_path(key, default)
        if value is None:
            raise ConfigError(self._name(key), "must be an absolute path, got null")
        return value

    def opt_obj(self, key: str, default: Any = _MISSING) -> Optional["_Fields"]:
        value = self.value(key, default)
        return None if value is None else _Fields(value, self._name(key))

    def obj(self, key: str) -> "_Fields":
        return _Fields(self.value(key), self._name(key))

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise ConfigError(self._name(unknown[0]), "unknown field" + (f" (also {', '.join(unknown[1:])})"
                                                                        if len(unknown) > 1 else ""))


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    num_classes: int
    drop_path_rate: float
    head_init_scale: float
    input_size: int


@dataclass(frozen=True)
class FcmaeConfig:
    mask_ratio: float = 0.6
    patch_size: int = 32
    decoder_dim: int = 512
    decoder_depth: int = 1
    norm_pix_loss: bool = True


@dataclass(frozen=True)
class DataConfig:
    manifest: str
    batch_size: int
    workers: int
    seed: int
    eval_split: str
    augment: Augment


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    total_steps: int
    weight_decay: float
    betas: Tuple[float, float]
    eps: float
    layer_decay: Optional[float]
    layer_decay_type: Optional[str]
    clip_grad: Optional[float]
    warmup_steps: int
    min_lr: float
    accum_steps: int
    label_smoothing: float
    mixup: float
    cutmix: float
    ema_decay: Optional[float]


@dataclass(frozen=True)
class JobConfig:
    kind: str
    run_dir: str
    model: ModelConfig
    fcmae: FcmaeConfig
    data: DataConfig
    optim: Optional[OptimConfig]
    init_weights: Optional[str]
    resume: Optional[str]
    device: str
    precision: str
    channels_last: bool
    compile: bool
    checkpoint_every_steps: Optional[int]
    eval_every_steps: Optional[int]
    log_every_steps: int
    devices: Optional[Tuple[int, ...]] = None  # GPU indices; a count N in the JSON means 0..N-1
    nproc: int = 1  # processes per node


def _devices(top: _Fields) -> Optional[Tuple[int, ...]]:
    value = top.value("devices", None)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if (isinstance(value, list) and value and len(set(value)) == len(value)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)):
        return tuple(value)
    raise ConfigError("devices", f"must be a count >= 1 or a list of distinct GPU indices, got {value!r}")


def _nproc(top: _Fields, devices: Optional[Tuple[int, ...]], device: str, batch: int) -> int:
    nproc = top.opt_integer("nproc", None, lo=1)
    if devices is not None:
        if device in ("cpu", "mps"):
            raise ConfigError("devices", f"lists GPUs but device is {device!r}")
        if nproc is not None and nproc != len(devices):
            raise ConfigError("nproc", f"must equal the number of devices ({len(devices)}): one process per GPU")
        nproc = len(devices)
    nproc = nproc or 1
    if batch % nproc:
        raise ConfigError("data.batchSize", f"{batch} does not split evenly over {nproc} processes")
    return nproc


def _model(f: _Fields) -> ModelConfig:
    arch = f.string("arch")
    try:
        parse_arch(arch)
    except ValueError as err:
        raise ConfigError(f"{f.path}.arch", str(err)) from None
    cfg = ModelConfig(arch=arch, num_classes=f.integer("numClasses", lo=0),
                      drop_path_rate=f.number("dropPathRate", 0.0, lo=0.0, hi=1.0),
                      head_init_scale=f.number("headInitScale", 1.0, lo=0.0),
                      input_size=f.integer("inputSize", 224, lo=32))
    if cfg.input_size % 32:
        raise ConfigError(f"{f.path}.inputSize", f"must be a multiple of 32 (the network stride), got {cfg.input_size}")
    f.done()
    return cfg


def _fcmae(f: _Fields) -> FcmaeConfig:
    cfg = FcmaeConfig(mask_ratio=f.number("maskRatio", 0.6, lo=0.0, hi=1.0),
                      patch_size=f.integer("patchSize", 32, lo=1),
                      decoder_dim=f.integer("decoderDim", 512, lo=1),
                      decoder_depth=f.integer("decoderDepth", 1, lo=1),
                      norm_pix_loss=f.boolean("normPixLoss", True))
    if cfg.patch_size != 32:
        raise ConfigError(f"{f.path}.patchSize", "must be 32, the encoder's total stride")
    if cfg.mask_ratio >= 1.0:
        raise ConfigError(f"{f.path}.maskRatio", "must be below 1 (some patches must stay visible)")
    f.done()
    return cfg


def _data(f: _Fields, kind: str) -> DataConfig:
    aug_fields = f.opt_obj("augment", None)
    cfg = DataConfig(manifest=f.abs_path("manifest"), batch_size=f.integer("batchSize", lo=1),
                     workers=f.integer("workers", 2, lo=0), seed=f.integer("seed", 0, lo=0),
                     eval_split=f.choice("evalSplit", ("val", "test"), "val"),
                     augment=_augment(aug_fields if aug_fields is not None else _Fields({}, f"{f.path}.augment"), kind))
    f.done()
    return cfg


def _range(f: _Fields, key: str, default: Tuple[float, float], hi: float) -> Tuple[float, float]:
    value = f.value(key, list(default))
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= hi for v in value)
            or value[0] > value[1]):
        raise ConfigError(f"{f.path}.{key}", f"must be [lo, hi] with 0 < lo <= hi <= {hi:g}, got {value!r}")
    return float(value[0]), float(value[1])


def _augment(f: _Fields, kind: str) -> Augment:
    d = default_augment(kind)
    policy = f.value("randAugment", d.rand_augment)
    if policy is not None:
        if not isinstance(policy, str):
            raise ConfigError(f"{f.path}.randAugment", f"must be a timm policy string or null, got {policy!r}")
        try:
            parse_rand_augment(policy)
        except ValueError as err:
            raise ConfigError(f"{f.path}.randAugment", str(err)) from None
    aug = Augment(scale=_range(f, "scale", d.scale, 1.0), ratio=_range(f, "ratio", d.ratio, 100.0),
                  hflip=f.number("hflip", d.hflip, lo=0.0, hi=1.0), pad_crop=f.opt_integer("padCrop", None, lo=0),
                  rand_augment=policy, reprob=f.number("reprob", d.reprob, lo=0.0, hi=1.0),
                  remode=f.choice("remode", ERASE_MODES, d.remode), recount=f.integer("recount", d.recount, lo=1))
    f.done()
    return aug


def _betas(f: _Fields) -> Tuple[float, float]:
    value = f.value("betas", [0.9, 0.999])
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)):
        raise ConfigError(f"{f.path}.betas", f"must be two numbers in [0, 1), got {value!r}")
    return float(value[0]), float(value[1])


def _optim(f: _Fields) -> OptimConfig:
    cfg = OptimConfig(
        lr=f.number("lr", lo=0.0, lo_open=True),
        total_steps=f.integer("totalSteps", lo=1),
        weight_decay=f.number("weightDecay", 0.05, lo=0.0),
        betas=_betas(f),
        eps=f.number("eps", 1e-8, lo=0.0, lo_open=True),
        layer_decay=f.opt_number("layerDecay", None, lo=0.0, hi=1.0, lo_open=True),
        layer_decay_type=f.opt_choice("layerDecayType", ("single", "group"), None),
        clip_grad=f.opt_number("clipGrad", None, lo=0.0, lo_open=True),
        warmup_steps=f.integer("warmupSteps", 0, lo=0),
        min_lr=f.number("minLr", 0.0, lo=0.0),
        accum_steps=f.integer("accumSteps", 1, lo=1),
        label_smoothing=f.number("labelSmoothing", 0.0, lo=0.0, hi=1.0),
        mixup=f.number("mixup", 0.0, lo=0.0),
        cutmix=f.number("cutmix", 0.0, lo=0.0),
        ema_decay=f.opt_number("emaDecay", None, lo=0.0, hi=1.0),
    )
    if cfg.warmup_steps > cfg.total_steps:
        raise ConfigError(f"{f.path}.warmupSteps", f"exceeds totalSteps ({cfg.total_steps})")
    if cfg.min_lr > cfg.lr:
        raise ConfigError(f"{f.path}.minLr", f"exceeds lr ({cfg.lr})")
    f.done()
    return cfg


def parse_job_config(raw: Any) -> JobConfig:
    """Validates a decoded JSON job config; raises ConfigError naming the first bad field."""
    top = _Fields(raw, "")
    version = top.value("version")
    if version != 1:
        raise ConfigError("version", f"unsupported config version {version!r} (this engine reads version 1)")
    kind = top.value("kind")
    if kind not in KINDS:
        raise ConfigError("kind", f"unknown job kind {kind!r} (expected {', '.join(KINDS)})")
    training = kind != "eval"
    run_dir = top.abs_path("runDir")
    model = _model(top.obj("model"))
    fcmae_fields = top.opt_obj("fcmae", None)
    fcmae = _fcmae(fcmae_fields) if fcmae_fields is not None else FcmaeConfig()
    data = _data(top.obj("data"), kind)
    optim_fields = top.obj("optim") if training else top.opt_obj("optim", None)
    optim = _optim(optim_fields) if optim_fields is not None else None
    init_fields = top.opt_obj("init", None)
    init_weights: Optional[str] = None
    if init_fields is not None:
        init_weights = init_fields.opt_abs_path("weights", None)
        init_fields.done()
    resume = top.opt_abs_path("resume", None)
    device = top.choice("device", DEVICES, "auto")
    precision = top.choice("precision", PRECISIONS, "fp32")
    channels_last = top.boolean("channelsLast", True)
    compile_flag = top.boolean("compile", False)
    checkpoint_every = (top.integer("checkpointEverySteps", lo=1) if training
                        else top.opt_integer("checkpointEverySteps", None, lo=1))
    eval_every = top.opt_integer("evalEverySteps", None, lo=1)
    log_every = top.integer("logEverySteps", 1, lo=1)
    devices = _devices(top)
    nproc = _nproc(top, devices, device, data.batch_size)
    top.done()
    if kind == "eval" and init_weights is None:
        raise ConfigError("init.weights", "an eval job needs the weights to evaluate")
    if kind == "eval" and resume is not None:
        raise ConfigError("resume", "an eval job cannot resume")
    if kind in ("finetune", "eval") and model.num_classes < 1:
        raise ConfigError("model.numClasses", f"a {kind} job needs at least one class")
    if kind == "pretrain":
        patches = (model.input_size // 32) ** 2
        keep = int(patches * (1 - fcmae.mask_ratio))
        if keep < 1 or keep == patches:
            raise ConfigError("model.inputSize", f"FCMAE at {model.input_size} px has {patches} patches and mask ratio "
                                                 f"{fcmae.mask_ratio} keeps {keep}: the encoder must see some patches and "
                                                 "the loss needs some removed (use 64 px or more)")
    if kind == "pretrain" and optim is not None:
        if optim.layer_decay is not None:
            raise ConfigError("optim.layerDecay", "layer-wise lr decay applies to fine-tuning only")
        for name, value in (("mixup", optim.mixup), ("cutmix", optim.cutmix), ("labelSmoothing", optim.label_smoothing)):
            if value:
                raise ConfigError(f"optim.{name}", "applies to fine-tuning only")
    return JobConfig(kind=kind, run_dir=run_dir, model=model, fcmae=fcmae, data=data, optim=optim,
                     init_weights=init_weights, resume=resume, device=device, precision=precision,
                     channels_last=channels_last, compile=compile_flag, checkpoint_every_steps=checkpoint_every,
                     eval_every_steps=eval_every, log_every_steps=log_every, devices=devices, nproc=nproc)
