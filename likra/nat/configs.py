"""NAT's commands' options as config dataclasses that check themselves when built (as ``likra.configs`` does for
Likra's): ``likra nat train``, ``eval``, ``collect`` and ``curve``. Nothing heavy is imported here (the CLI builds
``likra nat --help`` from these)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from likra.configs import LoopConfig
from likra.errors import LikraError
from likra.models import DEFAULT_MODEL, check_device
from likra.nat.tasks import AGENT_TASK_HELP, get_agent_task
from likra.nat.templates import TEMPLATE_HELP, TEMPLATES, check_template
from likra.options import DTYPE_HELP, data_dir_option, device_option, model_option, option

ALL_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(kw_only=True)
class NATConfig(LoopConfig):
    """Everything that decides an agent training run; ``likra nat train`` options map one to one."""

    model: str = model_option(DEFAULT_MODEL)
    task: str = option("strategyqa", AGENT_TASK_HELP)
    pos: list[str] = option(factory=list, help="Successful trajectories: NAT .json or likra .jsonl, comma-separated.")
    neg: list[str] = option(factory=list, help="Failed trajectories, the same formats.")
    pos_num: int | None = option(None, "Positives to train on (seeded sample; default all).")
    neg_num: int | None = option(None, "Negatives to train on (default all; 0: none).")
    template: str = option("negative-aware", TEMPLATE_HELP)
    full: bool = option(False, "Full fine-tuning instead of a LoRA adapter.")
    eval_split: str | None = option(None, "Evaluation split whose questions are dropped (default: the task's).",
                                    flags=("--split",))  # fmt: skip
    data_dir: str | None = data_dir_option()
    lr: float = 5e-4
    lora_r: int = 16
    lora_alpha: int = 32
    target_modules: list[str] = field(default_factory=lambda: list(ALL_MODULES))
    max_length: int = option(2048, "Longest trajectory in tokens (it keeps its beginning).")
    # one trajectory per forward pass: packing several into a row costs attention quadratic in the row's length,
    # which for ~500-token trajectories outweighs the saved per-pass overhead (benchmarks/nat_train_speed.py)
    micro_batch_size: int | None = 1
    save_at: list[int] | None = option(factory=list, help="Trajectory counts to save at, comma-separated (default: "
                                       "the end).")  # fmt: skip

    def __post_init__(self) -> None:
        get_agent_task(self.task)
        check_template(self.template)
        if not self.pos:
            raise LikraError("--pos: give at least one file of successful trajectories")
        for name, value in {"--pos-num": self.pos_num, "--neg-num": self.neg_num}.items():
            if value is not None and value < 0:
                raise LikraError(f"{name} {value}: must be 0 or more")
        if self.neg_num and not self.neg:
            raise LikraError(f"--neg-num {self.neg_num}: give the negatives with --neg FILE")
        if self.pos_num == 0 and (self.neg_num == 0 or not self.neg):
            raise LikraError("--pos-num 0: with no negatives either there is nothing to train on")
        super().__post_init__()



@dataclass(kw_only=True)  # configs are built with keywords
class AgentRunConfig:
    """The options ``likra nat eval`` and ``likra nat collect`` share."""

    task: str = option("strategyqa", AGENT_TASK_HELP)
    model: str = model_option(DEFAULT_MODEL)
    checkpoint: str | None = option(None, "A NAT run or step-K: its agent replaces the model.")
    template: str | None = option(None, "Prompt template (default: the checkpoint's, else negative-aware for "
                                  "eval, none for collect).")  # fmt: skip
    split: str | None = option(None, "The problems' split (default: the task's test split; collect: its training "
                               "split).")  # fmt: skip
    limit: int | None = option(None, "Only the first N problems.")
    sample: int | None = option(None, "A seeded sample of N problems.")
    shots: int = option(0, "Solved examples in the prompt (GSM8K: from its annotations; see likra.nat.demos).")
    demos: str | None = option(None, "Trajectory file to draw the solved examples from.")
    max_steps: int = option(8, "Most agent turns per episode.")
    max_new_tokens: int = option(160, "Longest agent turn in tokens.")
    batch_size: int = option(16, "Episodes generated together.")
    seed: int = option(1234, "Seeds --sample and sampling.")
    dtype: str = option("auto", DTYPE_HELP)
    device: str = device_option()
    data_dir: str | None = data_dir_option()
    corpus: list[str] = option(factory=list, help="Offline search passages: text or JSONL files, comma-separated.")
    search_url: str | None = option(None, "An HTTP search service (GET ?q=&k= → JSON list).")

    def __post_init__(self) -> None:
        get_agent_task(self.task)
        if self.template is not None:
            check_template(self.template)
        for name, value in {"--max-steps": self.max_steps, "--max-new-tokens": self.max_new_tokens,
                            "--batch-size": self.batch_size}.items():  # fmt: skip
            if value < 1:
                raise LikraError(f"{name} {value}: must be 1 or more")
        if self.shots < 0:
            raise LikraError(f"--shots {self.shots}: must be 0 or more")
        check_device(self.device)


@dataclass(kw_only=True)
class AgentEvalConfig(AgentRunConfig):
    """``likra nat eval`` options (split: default the task's test split)."""

    temperature: float = option(0.0, "Sampling temperature (0: greedy).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise LikraError(f"--temperature {self.temperature}: must be 0 or more")



@dataclass(kw_only=True)
class CollectConfig(AgentRunConfig):
    """``likra nat collect`` options (split: default the task's training split)."""

    task: str = "gsm8k"
    temperatures: list[float] = option(factory=lambda: [0.0, 0.7, 1.0],
                                       help="Sampling temperatures, comma-separated (0: greedy).")  # fmt: skip
    skip: list[str] = option(factory=list, help="Trajectory files (comma-separated) whose questions are not "
                             "collected on.")  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperatures or not all(t >= 0 and math.isfinite(t) for t in self.temperatures):
            shown = ",".join(f"{t:g}" for t in self.temperatures)
            raise LikraError(f"--temperatures {shown}: give one or more numbers, 0 or more")



@dataclass(kw_only=True)  # configs are built with keywords
class NATCurveConfig:
    """A NAT curve; ``likra nat curve`` options map one to one. ``train`` holds the options every run shares (its
    ``seed``, ``neg_num`` and ``template`` are each run's); ``eval`` those of every evaluation (its task, model,
    split and data folder are ``train``'s)."""

    train: NATConfig
    eval: AgentEvalConfig = field(default_factory=AgentEvalConfig)
    neg_nums: list[str] = option(factory=lambda: ["0", "256", "all"], help=(
        "Negative trajectories per run, comma-separated counts or all (0: the positives-only run)."))  # fmt: skip
    templates: list[str] = option(factory=lambda: ["negative-aware", "none"],
                                  help="Templates to compare (none: plain mixing).")  # fmt: skip
    seeds: list[int] = option(factory=lambda: [1234],
                              help="Training seeds themselves, comma-separated (not a count: 1,2,3 for three).")
    train_dtype: str = option("auto", "Weights' dtype while training. " + DTYPE_HELP)

    def __post_init__(self) -> None:
        self.neg_nums = [str(n).strip().lower() for n in self.neg_nums]  # the Python API may pass numbers
        shown = ",".join(self.neg_nums)
        if not self.neg_nums or any(n != "all" and not n.isdigit() for n in self.neg_nums):
            raise LikraError(f"--neg-nums {shown}: expected counts (0 or more) or all, comma-separated")
        if any(n != "0" for n in self.neg_nums) and not self.train.neg:
            raise LikraError(f"--neg-nums {shown}: give the negative trajectories with --neg FILE")
        if self.train.pos_num == 0 and "0" in self.neg_nums:
            raise LikraError(f"--pos-num 0 --neg-nums {shown}: the run with 0 negatives would train on nothing")
        if not self.templates:
            raise LikraError("--templates: name at least one template")
        unknown = [t for t in self.templates if t not in TEMPLATES]
        if unknown:
            raise LikraError(f"--templates {','.join(self.templates)}: expected some of {', '.join(TEMPLATES)}")
        if not self.seeds:
            raise LikraError("--seeds: give at least one seed")
        self.eval_config("")  # every evaluation's options, checked as they will be built

    def run_config(self, seed: int, neg_num: int, template: str) -> NATConfig:
        """One run's training options (the positives-only run has no prefix: template none)."""
        return replace(self.train, seed=seed, neg_num=neg_num, template=template if neg_num else "none")

    def eval_config(self, checkpoint: str) -> AgentEvalConfig:
        """The evaluation of one run; the template comes from the checkpoint (NAT asks for a successful one)."""
        train = self.train
        return replace(self.eval, task=train.task, model=train.model, split=train.eval_split,
                       data_dir=train.data_dir, device=train.device, checkpoint=checkpoint, template=None)  # fmt: skip
