"""Agents at work: load a trained agent, give it its task's tools, and run it over problems in resumable
chunks, either to measure it (``evaluate_agent``) or to build NAT data for a new task (``collect``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from likra.checkpoints import open_merged
from likra.data.items import select_items
from likra.data.pools import normalize_text
from likra.data.tasks import data_dir_from
from likra.errors import LikraError
from likra.files import claim, read_json, read_text, write_json
from likra.models import DEFAULT_MODEL, LoadedModel, describe, load_model
from likra.nat.agent import HFGenerator, run_agent, summarize
from likra.nat.configs import AgentEvalConfig, AgentRunConfig, CollectConfig
from likra.nat.demos import demo_picker
from likra.nat.tasks import AgentTask, Problem, get_agent_task, load_problems, read_rows
from likra.nat.templates import check_template
from likra.nat.tools import BM25Search, HTTPSearch, Search, ToolError, calculate, strategyqa_corpus
from likra.nat.trajectories import Trajectory, read_trajectories, write_trajectories
from likra.progress import ProgressFactory, no_progress

NAT_RELEASE = {"strategyqa": ("strategyqa_gpt-3.5_positive.json", "strategyqa_gpt-3.5_negative.json")}


# --- the agent and its tools ------------------------------------------------------------------------


def load_agent(
    model: str, checkpoint: str | None, dtype: str = "auto", device: str = "auto"
) -> tuple[LoadedModel, str | None, str | None]:
    """The base model, or a NAT checkpoint's agent (its LoRA merged into the weights, for fast generation), with
    the template it was trained with and the checkpoint's folder (None for the base model)."""
    if checkpoint is None:
        return load_model(model, dtype=dtype, device=device), None, None
    # the checkpoint's own base (found as a Likra checkpoint's is), unless --model names another
    loaded, manifest, step = open_merged(checkpoint, None if model == DEFAULT_MODEL else model, dtype, device)
    return loaded, manifest.template, str(step)


def read_corpus(path: str) -> list[str]:
    """Passages for offline search: a text file (one per line) or JSONL rows with a ``text`` field."""
    file = Path(path)
    if file.suffix not in (".jsonl", ".json"):
        if not file.is_file():
            raise LikraError(f"--corpus {path}: file not found")
        return [line.strip() for line in read_text(file).splitlines() if line.strip()]
    passages = []
    for number, row in read_rows(file):
        if not isinstance(row.get("text"), str):
            raise LikraError(f"--corpus {path}: row {number} has no 'text' string")
        passages.append(row["text"])
    return passages


def make_tools(
    task: AgentTask, data_dir: str | None = None, corpus: Sequence[str] = (), search_url: str | None = None, k: int = 3
) -> dict[str, Callable[[str], str]]:
    """The task's tool. Search runs over ``search_url`` when given, else BM25 over ``corpus`` files, plus for
    StrategyQA its training questions' facts and the passages recorded in the NAT release's trajectories."""
    if task.tool == "calculator":
        return {"calculator": calculate}
    if search_url:
        return {"search": Search(HTTPSearch(search_url), k)}
    passages = [p for path in corpus for p in read_corpus(path)]
    if task.name == "strategyqa":
        train = load_problems(task, "train", data_dir)
        observations = []
        folder = _release_folder(task, data_dir)
        for name in NAT_RELEASE["strategyqa"] if folder else ():
            for trajectory in read_trajectories(folder / name, train):
                observations += [t.content for t in trajectory.turns if t.role == "user"]
        passages += strategyqa_corpus(train, observations)
    if not passages:
        raise LikraError(f"task {task.name}: search needs --corpus FILE or --search-url URL")
    try:
        return {"search": Search(BM25Search(passages), k)}
    except ToolError as err:
        raise LikraError(f"--corpus: {err}") from None


def _release_folder(task: AgentTask, data_dir: str | None) -> Path | None:
    folder = data_dir_from(data_dir)
    return folder / task.folder if folder is not None and (folder / task.folder).is_dir() else None


# --- resumable runs over problems -------------------------------------------------------------------


def run_chunks(
    problems: Sequence[Problem],
    folder: Path,
    run: Callable[[Sequence[Problem]], list[Trajectory]],
    chunk: int = 32,
    progress: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """Run ``run`` over the problems ``chunk`` at a time, each chunk's trajectories saved as it finishes, so a
    re-run (or a run killed midway) redoes nothing finished."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Trajectory] = []
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk]
        path = folder / f"part-{start:05d}.jsonl"
        ids = [p.id for p in part]
        if path.is_file():
            done = read_trajectories(path)
            if [t.id for t in done] == ids:
                out += done
                if progress is not None:
                    progress(len(part))
                continue
        found = run(part)
        write_trajectories(path, found)
        out += found
        if progress is not None:
            progress(len(part))
    return out


# ``progress(total, description)`` opens a progress display and yields ``advance(n)``; opened once the inputs are
# checked, so an error is never printed over a bar.
RESUME_FREE = ("limit", "sample", "data_dir", "batch_size")  # options that do not change a finished chunk


def claim_folder(out: Path, config: dict[str, Any]) -> None:
    """Record the run's options in ``out/options.json``; refuse a folder holding a run with other options (its
    finished chunks would otherwise be mixed with new ones)."""
    path = out / "options.json"
    kept = {k: v for k, v in config.items() if k not in RESUME_FREE}
    if path.is_file():
        previous = read_json(path, what="a likra run's options")
        changed = sorted(k for k in set(previous) | set(kept) if previous.get(k) != kept.get(k))
        if changed:
            raise LikraError(f"--out {out}: holds a run with other options ({', '.join(changed)}); pick a new folder")
        return
    write_json(path, kept)


@dataclass
class _Agent:
    """An agent ready to run: its task, problems, model, tools and prompt examples."""

    task: AgentTask
    problems: list[Problem]
    loaded: LoadedModel
    checkpoint: str | None  # the NAT checkpoint's folder (None: the base model)
    tools: dict[str, Callable[[str], str]]
    demos: Callable[[Problem], list[str]] | None
    template: str

    def generator(self, config: AgentRunConfig) -> HFGenerator:
        return HFGenerator(self.loaded.model, self.loaded.tokenizer, config.max_new_tokens, config.batch_size)


def _prepare(config: AgentRunConfig, split: str | None, template: str, skip: Sequence[str] = ()) -> _Agent:
    """Everything an agent run needs, every input checked, before anything is written. ``template`` is the
    fallback when neither the options nor the checkpoint name one; problems whose question is in a ``skip``
    trajectory file are left out before sampling."""
    task = get_agent_task(config.task)
    problems = load_problems(task, split, config.data_dir)
    if skip:
        seen = {normalize_text(t.question) for path in skip for t in read_trajectories(path, problems)}
        problems = [p for p in problems if normalize_text(p.question) not in seen]
    problems = select_items(problems, config.limit, config.sample, config.seed)
    loaded, trained_with, checkpoint = load_agent(config.model, config.checkpoint, config.dtype, config.device)
    template = check_template(config.template or trained_with or template)
    tools = make_tools(task, config.data_dir, config.corpus, config.search_url)
    demos = demo_picker(task, config.shots, config.seed, config.data_dir, config.demos)
    return _Agent(task, problems, loaded, checkpoint, tools, demos, template)


def evaluate_agent(config: AgentEvalConfig, out: str | Path, progress: ProgressFactory = no_progress) -> dict[str, Any]:
    """Run the agent on the problems and write ``out/results.json`` and ``out/items.jsonl`` (every trajectory)."""
    out = Path(out)
    agent = _prepare(config, config.split, "negative-aware")
    with claim(out):  # one writer: a second run into the folder would redo and overwrite the same chunks
        claim_folder(out, asdict(config))  # the options are valid: from here on the folder is this run's
        return _evaluate_agent(agent, config, out, progress)


def _evaluate_agent(agent: _Agent, config: AgentEvalConfig, out: Path, progress: ProgressFactory) -> dict[str, Any]:
    task, template = agent.task, agent.template
    generate = agent.generator(config)

    def run(part: Sequence[Problem]) -> list[Trajectory]:
        return run_agent(
            generate, part, task, agent.tools, template, config.max_steps, config.temperature, config.seed,
            demos=agent.demos,
        )  # fmt: skip

    with progress(len(agent.problems), "episodes") as advance:
        trajectories = run_chunks(agent.problems, out / "parts", run, progress=advance)
    write_trajectories(out / "items.jsonl", trajectories)
    results = {
        "task": task.name,
        "split": config.split or task.default_split,
        "template": template,
        "metrics": summarize(trajectories),
        "config": asdict(config),
        "checkpoint": agent.checkpoint,
        "model": agent.loaded.name,
        "hardware": describe(agent.loaded),
    }
    write_json(out / "results.json", results)
    return results


def collect(config: CollectConfig, out: str | Path, progress: ProgressFactory = no_progress) -> dict[str, Any]:
    """Sample one trajectory per problem and temperature with the task's tools (asking a checkpoint for a
    successful one; the base model gets the plain prompt), check each, and write ``out/positive.jsonl`` and
    ``out/negative.jsonl``: NAT data for ``likra nat train``."""
    out = Path(out)
    task = get_agent_task(config.task)
    split = config.split or task.train_split
    if split is None:
        raise LikraError(f"--task {task.name}: has no training split to collect on; pass --split")
    agent = _prepare(config, split, "none", config.skip)
    with claim(out):  # one writer (as for evaluate_agent)
        claim_folder(out, asdict(config))  # the options are valid: from here on the folder is this run's
        return _collect(agent, config, split, out, progress)


def _collect(agent: _Agent, config: CollectConfig, split: str, out: Path, progress: ProgressFactory) -> dict[str, Any]:
    task = agent.task
    generate = agent.generator(config)
    problems = agent.problems
    found: list[Trajectory] = []
    with progress(len(problems) * len(config.temperatures), "episodes") as advance:
        for temperature in config.temperatures:

            def run(part: Sequence[Problem], t: float = temperature) -> list[Trajectory]:
                return run_agent(
                    generate,
                    part,
                    task,
                    agent.tools,
                    agent.template,
                    config.max_steps,
                    t,
                    config.seed,
                    demos=agent.demos,
                )

            found += run_chunks(problems, out / f"t-{temperature:g}", run, progress=advance)
    positives = [t for t in found if t.reward]
    negatives = [t for t in found if not t.reward]
    write_trajectories(out / "positive.jsonl", positives)
    write_trajectories(out / "negative.jsonl", negatives)
    summary = {
        "task": task.name,
        "split": split,
        "problems": len(problems),
        "temperatures": config.temperatures,
        "template": agent.template,
        "checkpoint": agent.checkpoint,
        "positives": len(positives),
        "negatives": len(negatives),
        "problems_solved": len({t.id for t in positives}),
        "per_temperature": {
            f"{t:g}": summarize([x for x in found if x.meta.get("temperature") == t]) for t in config.temperatures
        },
        "config": asdict(config),
        "model": agent.loaded.name,
        "hardware": describe(agent.loaded),
    }
    write_json(out / "collect.json", summary)
    return summary
