"""Runs one job (pretrain | finetune | eval) from a validated config and reports it as events.

Steps count optimizer updates; each takes `accumSteps` micro-batches of `batchSize` images. Everything
random is seeded: the model init by data.seed, batch order and augmentation by (seed, epoch, index), FCMAE
masks and mixup by (seed, step, micro-batch), drop path by the global RNG whose state is checkpointed, so
`resume` continues the same run (bit-identical on the same device and thread count).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import time
import traceback
from dataclasses import dataclass
from typing import Any, ContextManager, Dict, Iterator, List, Optional, Tuple, cast

import torch
import torch.nn as nn

from . import checkpoint as ckpt
from .augment import apply_erasing
from .config import JobConfig
from .data import (EpochBatchSampler, ImageDataset, ManifestError, ManifestItem, SequentialBatchSampler,
                   load_manifest, make_loader, normalize)
from .distributed import Ranks, ShardedBatchSampler, pick_cuda_device
from .events import EventWriter
from .fcmae import FCMAE, create_fcmae, random_mask
from .models import ConvNeXt, count_parameters, create_model, normalize_classifier_state, parse_arch
from .recipes import MixupCutmix, ModelEma, classification_loss, default_layer_decay_type, lr_at, param_groups
from .safetensors_io import save_file

Tensor = torch.Tensor


class JobError(RuntimeError):
    """A failure with a message meant for the user (bad data, missing weights, ...)."""


class CancelToken:
    """Set from a signal handler; the job checks it between steps."""

    def __init__(self) -> None:
        self.requested = False

    def cancel(self) -> None:
        self.requested = True


@dataclass(frozen=True)
class Precision:
    name: str  # what is actually used: fp32 | bf16 | fp16
    autocast_dtype: Optional[torch.dtype]
    use_scaler: bool


def pick_device(requested: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise JobError(f"device 'cuda' requested but CUDA is not available to torch {torch.__version__}")
    if requested == "mps" and not mps_ok:
        raise JobError(f"device 'mps' requested but MPS is not available to torch {torch.__version__}")
    return torch.device(requested)


def resolve_precision(requested: str, device: torch.device, events: EventWriter) -> Precision:
    if requested == "fp32":
        return Precision("fp32", None, False)
    if device.type == "cuda":
        if requested == "bf16" and torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, False)
        if requested == "bf16":
            events.log("this GPU has no bf16 support; using fp16 autocast with loss scaling", "warning")
        return Precision("fp16", torch.float16, True)
    if device.type == "cpu":
        if requested == "bf16":
            return Precision("bf16", torch.bfloat16, False)
        events.log("fp16 autocast is not available on the CPU; running in fp32", "warning")
        return Precision("fp32", None, False)
    events.log(f"mixed precision on {device.type} is not supported by this engine; running in fp32", "warning")
    return Precision("fp32", None, False)


def autocast(device: torch.device, precision: Precision) -> ContextManager[Any]:
    if precision.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast_dtype)


def to_channels_last(module: nn.Module) -> None:
    # Module.to(memory_format=...) works on every supported torch; torch 1.13's type stubs just omit it.
    cast(Any, module).to(memory_format=torch.channels_last)


def make_grad_scaler() -> Any:
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def is_out_of_memory(err: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(err, oom_type)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err))


def seed_from(*parts: Any) -> int:
    """A 63-bit seed from any parts, stable across processes (str seeding of random.Random is hash-free)."""
    return random.Random(":".join(str(p) for p in parts)).getrandbits(63)


def split_state(state: Dict[str, Tensor], model: nn.Module, source: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Keeps the tensors that fit `model`; the head classifier may be dropped (returned by name) when its shape
    differs (new number of classes); any other mismatch is an error naming the key."""
    own = model.state_dict()
    kept: Dict[str, Tensor] = {}
    dropped: List[str] = []
    for key, value in state.items():
        if key not in own:
            raise JobError(f"{source}: '{key}' is not a parameter of this model (is the architecture right?)")
        if tuple(value.shape) != tuple(own[key].shape):
            if key.startswith("head.fc."):
                dropped.append(key)
                continue
            raise JobError(f"{source}: '{key}' has shape {tuple(value.shape)}, the model expects "
                           f"{tuple(own[key].shape)} (is the architecture right?)")
        kept[key] = value
    return kept, dropped


def load_classifier_weights(model: ConvNeXt, path: str, events: EventWriter, strict_head: bool) -> None:
    raw = ckpt.load_weights_file(path)
    state = normalize_classifier_state(raw, model)
    kept, dropped = split_state(state, model, path)
    if dropped and strict_head:
        raise JobError(f"{path}: the classifier has another number of classes than model.numClasses "
                       f"({model.head.fc.out_features if model.head and model.head.fc else 0})")
    missing = [k for k in model.state_dict() if k not in kept]
    encoder_missing = [k for k in missing if not k.startswith("head.")]
    if encoder_missing:
        raise JobError(f"{path}: {len(encoder_missing)} encoder tensors are missing, e.g. {encoder_missing[0]}")
    if strict_head and missing:
        raise JobError(f"{path}: the classifier head is missing ({missing[0]}); cannot evaluate without it")
    model.load_state_dict(kept, strict=False)
    if missing:
        events.log(f"initialised from {path}; head not in the checkpoint or resized, trained from scratch: "
                   f"{', '.join(missing)}")
    else:
        events.log(f"initialised from {path}")


def load_fcmae_weights(model: FCMAE, path: str, events: EventWriter) -> None:
    raw = ckpt.load_weights_file(path)
    if any(k.startswith("encoder.") for k in raw):
        # Ours hold the encoder under timm names, the official FCMAE under official ones.
        encoder_state = normalize_classifier_state(raw, model.encoder)
        decoder_state = {k: v for k, v in raw.items() if not k.startswith("encoder.")}
    else:
        # A classifier checkpoint (timm or official names): its encoder part, without the head.
        encoder_state = {k: v for k, v in normalize_classifier_state(raw, model.encoder).items()
                         if not k.startswith("head.")}
        decoder_state = {}
    enc_kept, _ = split_state(encoder_state, model.encoder, path)
    missing = [k for k in model.encoder.state_dict() if k not in enc_kept]
    if missing:
        raise JobError(f"{path}: {len(missing)} encoder tensors are missing, e.g. {missing[0]}")
    model.encoder.load_state_dict(enc_kept)
    if decoder_state:
        decoder_own = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}
        for key, value in decoder_state.items():
            if key not in decoder_own or tuple(decoder_own[key].shape) != tuple(value.shape):
                raise JobError(f"{path}: decoder tensor '{key}' does not fit this FCMAE config")
        model.load_state_dict({**{f"encoder.{k}": v for k, v in enc_kept.items()}, **decoder_state}, strict=False)
        events.log(f"initialised encoder and decoder from {path}")
    else:
        events.log(f"initialised encoder from {path}; decoder trained from scratch")


# Bounds the mistakes file of a huge validation split (a few MB at most).
MAX_MISTAKES = 20000


def write_mistakes(events: EventWriter, run_dir: str, step: int, split: str, mistakes: List[Dict[str, Any]]) -> None:
    """evals/step-<step>.json: the misclassified images of an evaluation, announced as a 'mistakes' sample."""
    path = os.path.join(run_dir, "evals", f"step-{step}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ckpt.write_json_atomic(path, {"version": 1, "step": step, "split": split, "mistakes": mistakes})
    events.emit("sample", step=step, kind="mistakes", path=path)


class _Evaluator:
    """Top-1/top-5, per-class accuracy and the confusion matrix over one labeled split."""

    def __init__(self, cfg: JobConfig, items: List[ManifestItem], device: torch.device, precision: Precision,
                 root: str, ranks: Ranks) -> None:
        self.cfg = cfg
        self.items = items
        self.ranks = ranks  # each rank evaluates every world-th image; the counts are summed
        self.device = device
        self.precision = precision
        self.root = root
        # The misclassified images of the last run (dataset-relative path, label, prediction), for the UI.
        self.mistakes: List[Dict[str, Any]] = []

    @torch.no_grad()
    def run(self, model: nn.Module, cancel: CancelToken) -> Dict[str, Any]:
        k = self.cfg.model.num_classes
        rank, world = self.ranks.rank, self.ranks.world
        shard = self.items[rank::world]
        dataset = ImageDataset(shard, self.cfg.model.input_size, None, self.cfg.data.seed)
        loader = make_loader(dataset, SequentialBatchSampler(len(shard), self.cfg.data.batch_size),
                             self.cfg.data.workers, self.device.type == "cuda", self.cfg.data.seed)
        confusion = torch.zeros(k, k, dtype=torch.int64, device=self.device)
        top5 = torch.zeros((), dtype=torch.int64, device=self.device)
        wrong: List[Tensor] = []
        seen = 0
        was_training = model.training
        model.eval()
        try:
            for images, labels in loader:
                if cancel.requested:
                    break
                x = normalize(images, self.device, self.cfg.channels_last)
                y = labels.to(self.device, non_blocking=True)
                with autocast(self.device, self.precision):
                    logits = model(x)
                pred = logits.argmax(dim=1)
                confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
                # (position in the split, label, prediction) of each mistake; the loader keeps split order.
                miss = (pred != y).nonzero().flatten()
                positions = torch.arange(seen, seen + len(y), device=self.device) * world + rank
                wrong.append(torch.stack([positions[miss], y[miss], pred[miss]], dim=1))
                seen += len(y)
                topk = logits.topk(min(5, k), dim=1).indices
                top5 += (topk == y.unsqueeze(1)).any(dim=1).sum()
        finally:
            model.train(was_training)
        conf = self.ranks.sum_(confusion).cpu()
        top5 = self.ranks.sum_(top5)
        found = sorted(self.ranks.gather(torch.cat(wrong).tolist() if wrong else []))
        self.mistakes = [{"path": os.path.relpath(self.items[i].path, self.root).replace(os.sep, "/"), "label": t, "pred": p}
                         for i, t, p in found[:MAX_MISTAKES]]
        total = int(conf.sum())
        rows = conf.sum(dim=1)
        per_class = [float(conf[i, i]) / float(rows[i]) if int(rows[i]) else None for i in range(k)]
        return {"images": total, "top1": float(conf.trace()) / total if total else None,
                "top5": float(top5) / total if total else None, "perClass": per_class, "confusion": conf.tolist()}


def _labeled(items: List[ManifestItem], num_classes: int, split: str, events: EventWriter) -> List[ManifestItem]:
    labeled = [it for it in items if it.label is not None]
    if len(labeled) < len(items):
        events.log(f"{len(items) - len(labeled)} unlabeled images in the {split} split are left out", "warning")
    bad = [it for it in labeled if (it.label or 0) >= num_classes]
    if bad:
        raise JobError(f"{bad[0].path}: label {bad[0].label} is outside model.numClasses ({num_classes})")
    return labeled


class Job:
    def __init__(self, cfg: JobConfig, events: EventWriter, cancel: CancelToken, ranks: Optional[Ranks] = None) -> None:
        self.cfg = cfg
        self.events = events
        self.cancel = cancel
        self.ranks = ranks or Ranks()
        self.device = torch.device("cpu")
        self.precision = Precision("fp32", None, False)
        self.manifest_root = ""

    def run(self) -> str:
        """Runs the job; returns the final status after emitting `done`. Never raises."""
        status = "failed"
        try:
            status = self._run()
        except (JobError, ManifestError, ckpt.CheckpointError) as err:
            self.events.error(str(err))
        except Exception as err:  # noqa: BLE001 - every failure must reach the UI as an event
            if is_out_of_memory(err):
                batch = self.cfg.data.batch_size
                self.events.error(f"{self.device.type} ran out of memory at batch size {batch}; try "
                                  f"{max(1, batch // 2)} (raise accumSteps to keep the effective batch)",
                                  detail=str(err), suggestedBatchSize=max(1, batch // 2))
            else:
                timed_out = self.ranks.timeout_message(err)
                self.events.error(timed_out or f"{type(err).__name__}: {err}", detail=traceback.format_exc())
        self.events.done(status)
        self.ranks.close()
        return status

    def _setup(self) -> None:
        torch.manual_seed(self.cfg.data.seed)
        self.device = pick_device(self.cfg.device)
        if self.device.type == "cuda":
            self.device = pick_cuda_device(self.ranks)
        self.ranks.init(self.device)
        self.precision = resolve_precision(self.cfg.precision, self.device, self.events)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True

    def _started(self, module: nn.Module) -> None:
        self.events.emit("started", engine="torch", torchVersion=torch.__version__, device=self._device_name(),
                         params=count_parameters(module), kind=self.cfg.kind, arch=self.cfg.model.arch,
                         precision=self.precision.name, worldSize=self.ranks.world)

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return self.device.type

    def _run(self) -> str:
        self._setup()
        manifest = load_manifest(self.cfg.data.manifest)
        self.manifest_root = manifest.root
        if self.cfg.kind == "eval":
            return self._run_eval(manifest.split(self.cfg.data.eval_split))
        return _Trainer(self, manifest.split("train"), manifest.split(self.cfg.data.eval_split)).run()

    def _run_eval(self, items: List[ManifestItem]) -> str:
        cfg = self.cfg
        model = create_model(cfg.model.arch, num_classes=cfg.model.num_classes)
        assert cfg.init_weights is not None
        load_classifier_weights(model, cfg.init_weights, self.events, strict_head=True)
        model.to(self.device)
        if cfg.channels_last:
            to_channels_last(model)
        self._started(model)
        labeled = _labeled(items, cfg.model.num_classes, cfg.data.eval_split, self.events)
        if not labeled:
            raise JobError(f"the {cfg.data.eval_split} split has no labeled images to evaluate")
        evaluator = _Evaluator(cfg, labeled, self.device, self.precision, self.manifest_root, self.ranks)
        result = evaluator.run(model, self.cancel)
        if self.cancel.requested:
            return "cancelled"
        self.events.emit("eval", step=0, weights="model", **result)
        if self.ranks.is_main:
            write_mistakes(self.events, cfg.run_dir, 0, cfg.data.eval_split, evaluator.mistakes)
        return "completed"


class _Trainer:
    """The training loop shared by pretraining (FCMAE) and fine-tuning."""

    def __init__(self, job: Job, train_items: List[ManifestItem], eval_items: List[ManifestItem]) -> None:
        self.job = job
        self.cfg = job.cfg
        self.events = job.events
        self.device = job.device
        self.precision = job.precision
        self.ranks = job.ranks
        assert self.cfg.optim is not None
        self.optim_cfg = self.cfg.optim
        self.pretrain = self.cfg.kind == "pretrain"
        self.train_items = train_items if self.pretrain else _labeled(
            train_items, self.cfg.model.num_classes, "train", self.events)
        self.eval_items: List[ManifestItem] = []
        if not self.pretrain and self.cfg.eval_every_steps is not None:
            self.eval_items = _labeled(eval_items, self.cfg.model.num_classes, self.cfg.data.eval_split, self.events)
            if not self.eval_items:
                split = self.cfg.data.eval_split
                raise JobError(f"{self.cfg.data.manifest}: evalEverySteps is set but the dataset has no labeled {split} "
                               "images to evaluate on; split some off (cnx dataset split NAME --val 0.1) or evaluate "
                               'on the test split (data.evalSplit "test", --eval-split test)')
        if not self.train_items:
            raise JobError("the train split has no usable images")
        self.ckpt_dir = os.path.join(self.cfg.run_dir, "checkpoints")
        self.step = 0
        self.micro_batches = 0
        self.best_top1: Optional[float] = None
        self.saved_step: Optional[int] = None

    def _build(self) -> None:
        cfg = self.cfg
        if self.pretrain:
            fc = cfg.fcmae
            self.module: nn.Module = create_fcmae(cfg.model.arch, fc.decoder_dim, fc.decoder_depth, fc.patch_size,
                                                  fc.mask_ratio, fc.norm_pix_loss, cfg.model.drop_path_rate)
            if cfg.init_weights:
                assert isinstance(self.module, FCMAE)
                load_fcmae_weights(self.module, cfg.init_weights, self.events)
        else:
            model = create_model(cfg.model.arch, num_classes=cfg.model.num_classes,
                                 drop_path_rate=cfg.model.drop_path_rate, head_init_scale=cfg.model.head_init_scale)
            if cfg.init_weights:
                load_classifier_weights(model, cfg.init_weights, self.events, strict_head=False)
            self.module = model
        self.module.to(self.device)
        if cfg.channels_last:
            to_channels_last(self.module)
        self.names = {id(p): n for n, p in self.module.named_parameters()}

        opt = self.optim_cfg
        depths = parse_arch(cfg.model.arch).depths
        decay_type = opt.layer_decay_type or default_layer_decay_type(cfg.model.arch)
        groups = param_groups(self.module.named_parameters(), opt.weight_decay, opt.layer_decay, depths, decay_type)
        kwargs: Dict[str, Any] = {"lr": opt.lr, "betas": opt.betas, "eps": opt.eps}
        fused = self.device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        if fused:
            kwargs["fused"] = True
        self.optimizer = torch.optim.AdamW(groups, **kwargs)
        self.ema = ModelEma(self.module, opt.ema_decay) if opt.ema_decay is not None else None
        self.scaler = make_grad_scaler() if self.precision.use_scaler else None
        self.mixer = MixupCutmix(opt.mixup, opt.cutmix, cfg.model.num_classes, opt.label_smoothing)
        self.parallel = self.ranks.wrap(self.module, self.device)  # DDP on more than one process
        self.train_module: nn.Module = self.parallel
        if cfg.compile:
            if hasattr(torch, "compile"):
                self.train_module = torch.compile(self.parallel)
            else:
                self.events.log(f"torch.compile needs torch 2; torch {torch.__version__} runs eagerly", "warning")
        self.events.log(f"device {self.job._device_name()}, precision {self.precision.name}, "
                        f"AdamW{' (fused)' if fused else ''}, {len(groups)} parameter groups"
                        + (f", layer decay {opt.layer_decay} ({decay_type})" if opt.layer_decay else "")
                        + (f", data-parallel over {self.ranks.world} processes ({self.ranks.backend})"
                           if self.ranks.enabled else ""))

    # ---- checkpoints ----------------------------------------------------------------------------------
    def _weights_metadata(self) -> Dict[str, str]:
        return {"format": ckpt.WEIGHTS_FORMAT, "arch": self.cfg.model.arch, "kind": self.cfg.kind,
                "naming": "fcmae" if self.pretrain else "timm", "step": str(self.step),
                "numClasses": str(self.cfg.model.num_classes)}

    def _save(self) -> None:
        if self.saved_step == self.step:
            return
        if not self.ranks.is_main:  # rank 0 alone writes; the others hold the same weights
            self.saved_step = self.step
            return
        os.makedirs(self.ckpt_dir, exist_ok=True)
        weights_path = os.path.join(self.ckpt_dir, ckpt.weights_name(self.step))
        state_path = os.path.join(self.ckpt_dir, ckpt.state_name(self.step))
        weights = {k: v.detach().float() for k, v in self.module.state_dict().items()}
        save_file(weights, weights_path, self._weights_metadata())
        state = ckpt.optimizer_state_tensors(self.optimizer, self.names)
        if self.ema is not None:
            state.update({f"ema.{k}": v.detach().float() for k, v in self.ema.state_dict().items()})
        state.update(ckpt.rng_state_tensors())
        meta = {"step": self.step, "microBatches": self.micro_batches, "kind": self.cfg.kind,
                "arch": self.cfg.model.arch, "batchSize": self.cfg.data.batch_size, "seed": self.cfg.data.seed,
                "bestTop1": self.best_top1, "weights": os.path.basename(weights_path), "worldSize": self.ranks.world,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        save_file(state, state_path, {"format": ckpt.STATE_FORMAT, "meta": json.dumps(meta)})
        ckpt.write_json_atomic(os.path.join(self.ckpt_dir, "last.json"),
                               {"step": self.step, "weights": os.path.basename(weights_path),
                                "state": os.path.basename(state_path)})
        self.saved_step = self.step
        self.events.emit("checkpoint", step=self.step, path=weights_path, statePath=state_path)

    def _resume(self, path: str) -> None:
        paths = ckpt.resolve_resume(path)
        tensors, meta = ckpt.read_state(paths.state)
        for key, expected in (("kind", self.cfg.kind), ("arch", self.cfg.model.arch),
                              ("batchSize", self.cfg.data.batch_size), ("seed", self.cfg.data.seed)):
            if meta.get(key) != expected:
                raise JobError(f"{paths.state}: saved with {key}={meta.get(key)!r}, this config has {expected!r}")
        weights = ckpt.load_weights_file(paths.weights)
        kept, dropped = split_state(weights, self.module, paths.weights)
        if dropped or len(kept) != len(self.module.state_dict()):
            raise JobError(f"{paths.weights}: does not match this model's parameters")
        self.module.load_state_dict(kept)
        ckpt.load_optimizer_state(self.optimizer, self.names,
                                  {k: v for k, v in tensors.items() if k.startswith("optim.")}, paths.state)
        if self.ema is not None:
            ema_state = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
            if ema_state:
                self.ema.load_state_dict(ema_state)
            else:
                self.events.log("the resumed state has no EMA weights; EMA restarts from the current model",
                                "warning")
                self.ema = ModelEma(self.module, self.ema.decay)
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        ckpt.restore_rng(tensors)
        self.step = int(meta["step"])
        self.micro_batches = int(meta["microBatches"])
        self.best_top1 = meta.get("bestTop1")
        self.saved_step = self.step
        self.events.log(f"resumed from {paths.state} at step {self.step}")

    # ---- evaluation -----------------------------------------------------------------------------------
    def _evaluate(self) -> None:
        evaluator = _Evaluator(self.cfg, self.eval_items, self.device, self.precision, self.job.manifest_root,
                               self.ranks)
        # Ranks must run the same collectives: with several, a stop waits for the next step boundary.
        cancel = CancelToken() if self.ranks.enabled else self.job.cancel
        result = evaluator.run(self.module, cancel)
        if cancel.requested:
            return
        self.events.emit("eval", step=self.step, weights="model", **result)
        if self.ranks.is_main:
            write_mistakes(self.events, self.cfg.run_dir, self.step, self.cfg.data.eval_split, evaluator.mistakes)
        if self.ema is not None:
            self.events.emit("eval", step=self.step, weights="ema", **evaluator.run(self.ema.module, cancel))
        top1 = result["top1"]
        if top1 is not None and (self.best_top1 is None or top1 > self.best_top1):
            self.best_top1 = top1
            self._save()  # the best pointer must name a checkpoint holding exactly these weights
            if self.ranks.is_main:
                ckpt.write_json_atomic(os.path.join(self.ckpt_dir, "best.json"),
                                       {"step": self.step, "weights": ckpt.weights_name(self.step),
                                        "state": ckpt.state_name(self.step), "top1": top1})

    # ---- training -------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        dataset = ImageDataset(self.train_items, self.cfg.model.input_size, self.cfg.data.augment, self.cfg.data.seed)
        try:
            sampler = EpochBatchSampler(len(dataset), self.cfg.data.batch_size, self.cfg.data.seed,
                                        self.micro_batches)
            shard = ShardedBatchSampler(sampler, self.ranks, self.cfg.data.batch_size)
        except ValueError as err:
            raise JobError(str(err)) from None
        self.batches_per_epoch = sampler.batches_per_epoch
        loader = make_loader(dataset, shard, self.cfg.data.workers, self.device.type == "cuda", self.cfg.data.seed)
        return iter(loader)

    def _forward_loss(self, images: Tensor, labels: Tensor, erase: Tensor, micro: int) -> Tensor:
        x = normalize(images, self.device, self.cfg.channels_last)
        seed = self.cfg.data.seed
        if self.cfg.data.augment.reprob > 0:
            first = self.ranks.shard(self.cfg.data.batch_size).start  # this rank's first sample of the global batch
            noise_of = lambda i: torch.Generator().manual_seed(seed_from("erase", seed, self.step, micro, first + i))  # noqa: E731
            x = apply_erasing(x, erase, self.cfg.data.augment.remode, noise_of)
        with autocast(self.device, self.precision):
            if self.pretrain:
                gen = torch.Generator().manual_seed(seed_from("mask", seed, self.step, micro))
                grid = self.cfg.model.input_size // self.cfg.fcmae.patch_size
                # The global batch's masks, this rank's slice: the same masks on any number of processes.
                mask = random_mask(self.cfg.data.batch_size, grid, grid, self.cfg.fcmae.mask_ratio, gen, self.device)
                return self.train_module(x, mask=mask[self.ranks.shard(self.cfg.data.batch_size)]).loss
            y = labels.to(self.device, non_blocking=True)
            if self.mixer.active:
                x, y = self.mixer(x, y, random.Random(seed_from("mix", seed, self.step, micro)))
            logits = self.train_module(x)
            return classification_loss(logits, y, self.optim_cfg.label_smoothing)

    def _train_step(self, batches: Iterator[Tuple[Tensor, Tensor, Tensor]]) -> Dict[str, float]:
        opt = self.optim_cfg
        lr = lr_at(self.step, opt.lr, opt.warmup_steps, opt.total_steps, opt.min_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        total = torch.zeros((), device=self.device)
        for micro in range(opt.accum_steps):
            images, labels, erase = next(batches)
            self.micro_batches += 1
            with self.ranks.no_sync(self.parallel, micro == opt.accum_steps - 1):
                loss = self._forward_loss(images, labels, erase, micro)
                scaled = loss / opt.accum_steps
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            total += loss.detach().float()
        # The global batch's loss, and a stop request from any rank so that all stop at the same step.
        loss_value, stop = self.ranks.mean_and_any(float(total) / opt.accum_steps, self.job.cancel.requested)
        if stop:
            self.job.cancel.cancel()
        if not math.isfinite(loss_value) and self.scaler is None:
            raise JobError(f"the loss became {loss_value} at step {self.step}; lower optim.lr or set optim.clipGrad")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, opt.clip_grad if opt.clip_grad else float("inf"))
        values = {"loss": loss_value, "lr": lr, "gradNorm": float(grad_norm)}
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            values["lossScale"] = float(self.scaler.get_scale())
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.module)
        self.step += 1
        return values

    def _stop_requested(self) -> bool:
        """Whether to stop now, agreed by every rank: a signal reaches one rank at any moment, and a rank that
        stopped alone would leave the others waiting in the next step's all-reduce."""
        if not self.ranks.enabled:
            return self.job.cancel.requested
        _, stop = self.ranks.mean_and_any(0.0, self.job.cancel.requested)
        if stop:
            self.job.cancel.cancel()
        return stop

    def run(self) -> str:
        self._build()
        if self.cfg.resume:
            self._resume(self.cfg.resume)
        self.job._started(self.module)
        total_steps = self.optim_cfg.total_steps
        if self.step >= total_steps:
            self.events.log(f"already at step {self.step} of {total_steps}; nothing to train")
            return "completed"
        batches = self._batches()
        self.module.train()
        images_per_step = self.cfg.data.batch_size * self.optim_cfg.accum_steps
        window_start, window_images = time.perf_counter(), 0
        while self.step < total_steps:
            values = self._train_step(batches)
            window_images += images_per_step
            if self.step % self.cfg.log_every_steps == 0 or self.step == total_steps:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - window_start
                self.events.emit("progress", step=self.step, totalSteps=total_steps,
                                 epoch=round(self.micro_batches / self.batches_per_epoch, 4),
                                 imagesPerSec=round(window_images / elapsed, 2) if elapsed > 0 else None)
                if self.device.type == "cuda":
                    # Peak allocated since the last report: what the batch size costs on the card.
                    values["gpuMemGiB"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
                    torch.cuda.reset_peak_memory_stats(self.device)
                self.events.emit("metrics", step=self.step, values=values)
                window_start, window_images = time.perf_counter(), 0
            if self._stop_requested():
                self._save()
                return "cancelled"
            every_eval = self.cfg.eval_every_steps
            if self.eval_items and every_eval and (self.step % every_eval == 0 or self.step == total_steps):
                self._evaluate()
                if self._stop_requested():
                    self._save()
                    return "cancelled"
            every_ckpt = self.cfg.checkpoint_every_steps
            if (every_ckpt and self.step % every_ckpt == 0) or self.step == total_steps:
                self._save()
        return "completed"
