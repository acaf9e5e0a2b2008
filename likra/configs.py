"""Every Likra command's options as a config dataclass that checks itself when built (TRL's one config per method).

A config that exists is valid: ``__post_init__`` refuses an impossible value with a one-line ``LikraError`` naming
the option, before any data is read or model loaded, and ``dataclasses.replace`` checks the new one again. Each
field's default and help are its ``option(...)`` (``likra.options``), from which the CLI derives its options.

This module imports nothing heavy (no torch, transformers or FastAPI): the CLI imports it to build ``likra --help``,
and the modules that run each command (``training``, ``evaluation``, ...) import their config from here. NAT's
configs are ``likra.nat.configs``.
"""

from __future__ import annotations

import math
import socket
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from likra.checkpoints import HEADS, PREFIX_HEAD
from likra.data.tasks import SAMPLERS
from likra.errors import LikraError
from likra.metrics import check_mode, check_norm, check_weight
from likra.models import DEFAULT_MODEL, check_device
from likra.negatives import KINDS
from likra.options import (
    TASK_HELP,
    batch_tokens_option,
    check_batch_tokens,
    data_dir_option,
    device_option,
    model_option,
    option,
)
from likra.training_log import trackers_for
from likra.verifier_metrics import MODE_METHODS

HEAD_CHOICES = {"both": HEADS, "positive": ("positive",), "negative": ("negative",)}
BASELINE_METHODS = ("dpo", "kto")
KTO_DATA = ("both", "negatives")
CALIBRATION_METHODS = ("platt", "isotonic")


def _at_least_one(values: dict[str, int | None]) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise LikraError(f"{name} {value}: must be 1 or more")


# --- training -----------------------------------------------------------------------------------------


@dataclass(kw_only=True)  # configs are built with keywords
class LoopConfig:
    """The optimisation settings every training method shares (Likra's heads, NAT's agent)."""

    # constant; 1e-4 barely moves a 135M model's heads in a few hundred examples
    lr: float = option(1e-3, "Constant AdamW learning rate.")
    lora_r: int = option(8, "LoRA rank.")
    lora_alpha: int = option(8, "LoRA alpha.")
    lora_dropout: float = option(0.0, "LoRA dropout.")
    target_modules: list[str] = option(factory=lambda: ["gate_proj", "up_proj", "down_proj"],
                                       help="Module names (comma-separated) that get LoRA.")  # fmt: skip
    batch_size: int = option(8, "Examples per optimiser step (Likra: questions; NAT: trajectories).")
    micro_batch_size: int | None = option(None, "Examples per forward pass (gradient accumulation; default all).")
    grad_accum: int = option(1, "Forward passes per optimiser step (the batch split evenly; or --micro-batch-size).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass instead of keeping "
                                          "them (less memory, more time; the same numbers).")  # fmt: skip
    epochs: int = option(1, "Passes over the training examples.")
    seed: int = option(1234, "Seeds the data order and sample, the negatives and the LoRA initialisation.")
    save_at: list[int] | None = option(None, "Example counts to save at, comma-separated (default 8,16,32,...).")
    max_length: int = option(1024, "Longest example in tokens (the context is cut on the left).")
    # weights and optimiser keep the model's dtype
    bf16: bool = option(False, "bfloat16 autocast for forward and backward (weights and optimiser stay in --dtype).")
    device: str = device_option()
    report_to: list[str] = option(factory=lambda: ["none"], help="Where the per-step training log also goes: "
                                  "tensorboard, wandb, all (those installed) or none (the Trainer's "
                                  "--report_to).")  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.report_to, str):  # the Trainer's report_to="tensorboard"
            self.report_to = [name for name in self.report_to.split(",") if name]
        trackers_for(self.report_to)
        _at_least_one({"--batch-size": self.batch_size, "--micro-batch-size": self.micro_batch_size,
                       "--grad-accum": self.grad_accum, "--epochs": self.epochs, "--lora-r": self.lora_r,
                       "--max-length": self.max_length})  # fmt: skip
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LikraError(f"--lr {self.lr}: must be a positive number")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise LikraError(f"--lora-dropout {self.lora_dropout}: must be in [0, 1)")
        if not self.target_modules:
            raise LikraError("--target-modules: name at least one module")
        if self.grad_accum > 1 and self.micro_batch_size is not None:
            raise LikraError(f"--grad-accum {self.grad_accum}: give it or --micro-batch-size, not both")
        check_device(self.device)
        if self.save_at is not None and any(s < 1 for s in self.save_at):
            raise LikraError(f"--save-at {','.join(map(str, self.save_at))}: example counts must be 1 or more")


@dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    """Everything that decides a Likra training run; ``likra train`` options map one to one. Paper defaults."""

    model: str = model_option(DEFAULT_MODEL)
    task: str = option("arc_challenge", TASK_HELP)
    eval_split: str | None = option(None, "The evaluation split kept out of the pool (default: the task's test split).",
                                    flags=("--split",))  # fmt: skip
    n: int | None = option(None, "Questions to train on (default: the whole pool).", flags=("--n",))
    negatives: str = option("incorrect", "incorrect, hardest, easiest, irrelevant, unrelated.")
    negatives_per_question: int = option(1, "Negative answers per question.")
    contamination: float = option(0.0, "Fraction of negatives replaced by the correct answer.")
    heads: str = option("both", "both, positive, negative.")
    data_dir: str | None = data_dir_option()
    train_file: str | None = option(None, "A JSONL pool in the task's format (needed for jsonl:).")
    hold_out: list[str] = option(factory=list, help="More evaluation sets kept out of the pool: task[:split], "
                                 "comma-separated.")  # fmt: skip
    method: str = option("likra", "likra (two LoRA heads) or prefix (one adapter on both kinds of answer, each "
                         "after a line saying which kind it is).")  # fmt: skip

    METHODS: ClassVar[tuple[str, ...]] = ("likra", "prefix")

    def __post_init__(self) -> None:
        if self.method not in self.METHODS:
            raise LikraError(f"--method {self.method}: expected one of {', '.join(self.METHODS)}")
        if self.method == "prefix" and self.heads != "both":
            raise LikraError(f"--heads {self.heads}: prefix Likra trains one adapter on both kinds of answer")
        if self.negatives not in KINDS:
            raise LikraError(f"--negatives {self.negatives}: unknown kind (known: {', '.join(KINDS)})")
        if self.heads not in HEAD_CHOICES:
            raise LikraError(f"--heads {self.heads}: expected one of {', '.join(HEAD_CHOICES)}")
        _at_least_one({"--n": self.n, "--negatives-per-question": self.negatives_per_question})
        if not 0.0 <= self.contamination <= 1.0:
            raise LikraError(f"--contamination {self.contamination}: must be between 0 and 1")
        super().__post_init__()

    @property
    def head_names(self) -> tuple[str, ...]:
        return (PREFIX_HEAD,) if self.method == "prefix" else HEAD_CHOICES[self.heads]


@dataclass(kw_only=True)
class BaselineConfig(TrainConfig):
    """A DPO or KTO run on Likra's data; ``likra baseline dpo|kto`` options map one to one."""

    METHODS: ClassVar[tuple[str, ...]] = BASELINE_METHODS

    method: str = option("dpo", "dpo (correct vs negative pairs) or kto (unpaired).")
    beta: float = option(0.1, "DPO/KTO beta (TRL's default 0.1).")
    kto_data: str = option("both", "KTO's examples: both (each question's positive and negative) or negatives.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kto_data not in KTO_DATA:
            raise LikraError(f"--kto-data {self.kto_data}: expected one of {', '.join(KTO_DATA)}")
        if not self.beta > 0:
            raise LikraError(f"--beta {self.beta}: must be positive")
        if self.negatives_per_question != 1:
            raise LikraError("--negatives-per-question: DPO and KTO baselines take one negative per question")
        if self.epochs != 1:
            raise LikraError("--epochs: DPO and KTO baselines run one epoch (examples seen = questions)")
        if self.batch_size % self.grad_accum:
            raise LikraError(f"--grad-accum {self.grad_accum}: TRL splits a batch evenly; it must divide --batch-size "
                             f"{self.batch_size}")  # fmt: skip
        bad = [p for p in self.save_at or [] if p % self.batch_size and p != self.n]
        if bad:
            raise LikraError(
                f"--save-at {','.join(map(str, bad))}: TRL saves between whole batches; "
                f"use multiples of --batch-size {self.batch_size}"
            )


# --- evaluation and the verifier ----------------------------------------------------------------------


@dataclass(kw_only=True)  # configs are built with keywords
class EvalConfig:
    """What to evaluate; the CLI's ``likra eval`` options map one to one."""

    task: str = option("arc_challenge", TASK_HELP)
    split: str | None = option(None, "Split as in the data (default: the task's test split).")
    limit: int | None = option(None, "Only the first N items, in file order (lm-eval's --limit).")
    sample: int | None = option(None, "A seeded random sample of N items (kept in file order).")
    subjects: list[str] | None = option(None, "Only questions of these subjects (MMLU's, e.g. college_physics).")
    shots: int = option(0, "Few-shot examples from the training split.")
    fewshot_sampler: str | None = option(None, "first_n (the first K of the few-shot split, of the same subject: "
                                         "every question gets the same shots, a shared prefix scored once) or "
                                         "random (seeded per question); default: the task's (MMLU's first_n, "
                                         "the others' random).")  # fmt: skip
    seed: int = option(1234, "Seed of the few-shot examples and --sample.")
    data_dir: str | None = data_dir_option()
    batch_tokens: str = batch_tokens_option()
    device: str = device_option()
    shared_prefix: int = option(32, "Contexts sharing a prefix of this many tokens or more (MMLU's shots) compute "
                                "it once; 0: never (same numbers, slower).")  # fmt: skip
    # ~40% more scoring at 0 shots
    calibrate: bool = option(True, "Also score each answer after a bare 'Answer:' (acc_calibrated).")
    checkpoint: str | None = option(None, "A `likra train` folder or its step-K/: score its heads beside the base "
                                    "model.")  # fmt: skip
    mode: str | None = option(None, "likra (L+ - w·L-), sft (L+), negbase (Lbase - w·L-), posbase (L+ - Lbase), "
                              "base (default: the first of likra, sft, negbase the heads allow).")  # fmt: skip
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    norm: str = option("char", "Headline normalisation: char (acc_norm), byte, token, none (acc).")
    p_true: bool = option(False, "Also score P(True) of every option (is this answer true? a verifier baseline), "
                          "under the base model and each head.")  # fmt: skip

    def __post_init__(self) -> None:
        self.batch_tokens = check_batch_tokens(self.batch_tokens)
        check_device(self.device)
        if self.shared_prefix < 0:
            raise LikraError(f"--shared-prefix {self.shared_prefix}: must be 0 or more")
        if self.fewshot_sampler not in (None, *SAMPLERS):
            raise LikraError(f"--fewshot-sampler {self.fewshot_sampler}: not one of {', '.join(SAMPLERS)}")
        if self.mode is not None:
            check_mode(self.mode)
        if self.mode not in (None, "base") and not self.checkpoint:
            raise LikraError(f"--mode {self.mode}: needs trained heads; give --checkpoint DIR")
        check_weight(self.neg_weight)
        check_norm(self.norm)


@dataclass(kw_only=True)
class VerifierConfig:
    """How a checkpoint scores answers; ``likra score`` options map one to one."""

    checkpoint: str = option(help="A `likra train` folder (its newest checkpoint) or one step-K/.")
    mode: str = option("likra", "The score: likra (L+ - w·L-), sft (L+), negbase (Lbase - w·L-), posbase, base.")
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    norm: str = option("char", "The score's length normalisation: char (per character), byte, token, none (summed).")
    batch_tokens: str = batch_tokens_option()
    device: str = device_option()
    chunk: int = option(256, "Rows read and scored together (memory is bounded by one chunk).")

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise LikraError("--checkpoint: give a `likra train` folder or one of its step-K/ folders")
        EvalConfig(checkpoint=self.checkpoint, mode=self.mode, neg_weight=self.neg_weight, norm=self.norm,
                   batch_tokens=self.batch_tokens, device=self.device)  # the same options, checked alike  # fmt: skip
        self.batch_tokens = check_batch_tokens(self.batch_tokens)
        _at_least_one({"--chunk": self.chunk})


@dataclass(kw_only=True)
class CalibrationConfig:
    """What to fit on; ``likra calibrate`` options map one to one."""

    split: str = option("validation", "A labelled split of the checkpoint's task, not its test split.")
    method: str = option("platt", "platt (logistic regression on the score) or isotonic.")
    limit: int | None = option(None, "Only the first N questions.")
    sample: int | None = option(None, "A seeded sample of N questions.")
    seed: int = option(1234, "Seeds --sample and the halves (fit / measure).")
    bins: int = option(10, "Equal-width bins of the ECE and the reliability diagram.")
    data_dir: str | None = data_dir_option()

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise LikraError(f"--method {self.method}: expected one of {', '.join(CALIBRATION_METHODS)}")
        if self.bins < 2:
            raise LikraError(f"--bins {self.bins}: must be 2 or more")

    def check_split(self, test_split: str) -> None:
        """Refuse the checkpoint task's test split (known once the checkpoint is read)."""
        if self.split == test_split:
            raise LikraError(f"--split {self.split}: the test split; calibrate on another (e.g. validation)")


@dataclass(kw_only=True)
class ServeConfig:
    """How ``likra serve`` listens and batches; its options map one to one."""

    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
    port: int = option(8000, "Port to listen on.")
    max_batch: int = option(64, "Most answers scored in one call (waiting requests are batched up to it).")
    max_queue: int = option(64, "Most requests waiting; more are answered 503.")
    max_body: int = option(1_000_000, "Largest request body in bytes; larger ones are answered 413.")
    max_answers: int = option(256, "Most answers in one request; more are answered 413.")
    api_key: str | None = option(None, "Key every request but GET /health must carry as 'Authorization: Bearer KEY' "
                                 "(401 otherwise); set it in $LIKRA_API_KEY to keep it out of the process list.",
                                 envvar="LIKRA_API_KEY")  # fmt: skip

    def __post_init__(self) -> None:
        _at_least_one({"--max-batch": self.max_batch, "--max-queue": self.max_queue, "--max-body": self.max_body,
                       "--max-answers": self.max_answers})  # fmt: skip
        if not 0 <= self.port <= 65535:
            raise LikraError(f"--port {self.port}: must be 0 to 65535")
        if self.api_key is not None and (not self.api_key.strip() or not self.api_key.isprintable()):
            raise LikraError("--api-key: give a non-empty key of printable characters (it travels in a header)")
        try:  # before the model loads; whether the address is this machine's is known when it is bound
            socket.getaddrinfo(self.host, None)
        except (OSError, ValueError):  # ValueError: a name IDNA cannot encode ("a..b")
            raise LikraError(f"--host {self.host}: not an address of this machine or a resolvable name") from None


# --- experiments --------------------------------------------------------------------------------------

# a learning curve's method → (scoring mode, metric), as the verifier metrics name them: the calibrated rows are the
# control for answer priors (posbase, L+ - Lbase, is not one of the curve's)
CURVE_METHODS: dict[str, tuple[str, str]] = {m: spec for m, spec in MODE_METHODS.items() if m != "posbase"}
# a baseline's rows, from its policy scored as the positive head
BASELINE_MODES = {"": ("sft", "acc_norm"), "_reward": ("posbase", "acc_norm")}
# prefix Likra's rows: its adapter after the "correct" line stands for L+, after the "wrong" line for L-
PREFIX_MODES = {"": ("likra", "acc_norm"), "_sft": ("sft", "acc_norm")}
OTHER_RUNS = {**dict.fromkeys(BASELINE_METHODS, BASELINE_MODES), "prefix": PREFIX_MODES}  # run kind → its rows
LIKRA_METHODS = ("sft", "sft_calibrated", "likra", "negbase")  # the curves that need Likra's own runs


@dataclass(kw_only=True)  # configs are built with keywords
class CurveConfig:
    """A learning-curve experiment; ``likra curve`` options map one to one."""

    train: TrainConfig = field(default_factory=TrainConfig)  # ``n`` is the largest N; ``seed`` is replaced
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    eval_task: str | None = option(None, "Task to score on (default: the training task).")
    eval_split: str | None = option(None, "Split to score on (default: the task's test split).")
    limit: int | None = option(None, "Only the first N questions.")
    sample: int | None = option(None, "A seeded sample of N questions.")
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    methods: list[str] = option(factory=lambda: list(LIKRA_METHODS), help=(
        "Curves to draw (and the runs they need): sft, sft_calibrated, likra, negbase, dpo, kto, dpo_reward, "
        "kto_reward (the baselines' implicit reward), prefix, prefix_sft (prefix Likra)."))  # fmt: skip
    baseline_lr: float | None = option(None, "DPO/KTO learning rate (default: --lr).")
    beta: float = option(0.1, "DPO/KTO beta (TRL's default 0.1).")
    kto_data: str = option("both", "KTO's examples: both (each question's positive and negative) or negatives.")
    p_true: bool = option(False, "Also score P(True) (rows base_ptrue, sft_ptrue); stored scores without it are "
                          "scored again.")  # fmt: skip
    batch_tokens: str = batch_tokens_option()

    def __post_init__(self) -> None:
        self.batch_tokens = check_batch_tokens(self.batch_tokens)
        if not self.seeds or min(self.seeds) < 1:  # the CLI's --seeds S is seeds 1..S
            raise LikraError(f"--seeds {len(self.seeds) if not self.seeds else self.seeds}: must be 1 or more")
        check_weight(self.neg_weight)
        if self.baseline_lr is not None and not (self.baseline_lr > 0 and math.isfinite(self.baseline_lr)):
            raise LikraError(f"--baseline-lr {self.baseline_lr}: must be a positive number")
        BaselineConfig(beta=self.beta, kto_data=self.kto_data)  # their checks, as a baseline run makes them
        known = [*CURVE_METHODS, *(f"{kind}{suffix}" for kind, modes in OTHER_RUNS.items() for suffix in modes)]
        unknown = [m for m in self.methods if m not in known]
        if unknown or not self.methods:
            raise LikraError(f"--methods {','.join(self.methods)}: expected some of {', '.join(known)}")

    def likra_heads(self) -> str:
        """The heads Likra's runs train: both, unless the curves asked for need one (negbase alone: the negative)."""
        needs = {"sft": {"positive"}, "sft_calibrated": {"positive"}, "likra": {"positive", "negative"},
                 "negbase": {"negative"}}  # fmt: skip
        wanted = set().union(*(needs.get(m, set()) for m in self.methods))
        return "both" if len(wanted) != 1 else next(iter(wanted))

    def other_runs(self) -> list[str]:
        """The runs besides Likra's that the requested curves need (DPO, KTO, prefix Likra)."""
        return [kind for kind in OTHER_RUNS if any(m.split("_")[0] == kind for m in self.methods)]

    def baseline_config(self, method: str, seed: int) -> BaselineConfig:
        fields = {**asdict(self.train), "seed": seed, "lr": self.baseline_lr or self.train.lr, "method": method}
        return BaselineConfig(**fields, beta=self.beta, kto_data=self.kto_data)

    def eval_config(self, checkpoint: str | None = None) -> EvalConfig:
        return EvalConfig(
            task=self.eval_task or self.train.task,
            split=self.eval_split,
            limit=self.limit,
            sample=self.sample,
            data_dir=self.train.data_dir,
            checkpoint=checkpoint,
            neg_weight=self.neg_weight,
            p_true=self.p_true,
            batch_tokens=self.batch_tokens,
            device=self.train.device,
        )


@dataclass(kw_only=True)  # configs are built with keywords
class GridConfig:
    """A grid over a curve folder; ``likra grid`` options map one to one."""

    eval_task: str | None = option(None, "The evaluation set (its task name; default: the first the curve scored).")
    eval_split: str | None = option(None, "Its split (default: the first scored).")
    neg_weight: float = option(1.0, "w, the negative head's weight.")
    # the value ratio is reported for the steps up to it and for those above it
    threshold: int = option(128, "Report the value of a negative up to and from this count.")
    max_examples: int | None = option(None, "Only the checkpoints up to this count (default: all that every seed has).")
    bootstrap: int = option(2000, "Resamples (seeds and questions) for the 95% intervals.")
    seed: int = option(1234, "Seed of the bootstrap.")

    def __post_init__(self) -> None:
        if not math.isfinite(self.neg_weight):
            raise LikraError(f"--neg-weight {self.neg_weight}: must be a finite number")
        _at_least_one({"--threshold": self.threshold, "--max-examples": self.max_examples})
        if self.bootstrap < 100:
            raise LikraError(f"--bootstrap {self.bootstrap}: use 100 resamples or more")
