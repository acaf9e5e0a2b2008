"""NAT: trajectories, templates, tools, checkers, the agent loop (scripted model), training and evaluation on
the tiny model, and the command line's errors."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from likra.errors import LikraError
from likra.models import LoadedModel
from likra.nat.agent import HFGenerator, cut_turn, run_agent, summarize
from likra.nat.checkers import check, check_f1, check_numeric, check_yes_no, to_number
from likra.nat.runs import AgentEvalConfig, claim_folder, evaluate_agent, run_chunks
from likra.nat.tasks import Problem, get_agent_task, load_problems
from likra.nat.templates import NEGATIVE, POSITIVE, encode_trajectory, first_message, prefix, segments
from likra.nat.tools import BM25Search, HTTPSearch, Search, ToolError, calculate, snippets
from likra.nat.trajectories import Trajectory, Turn, parse_action, read_trajectories, write_jsonl

from .conftest import tiny_llama
from .test_cli import assert_one_line_error, likra

STRATEGYQA = "nat/strategyqa"


def trajectory(reward: bool = True, question: str = "Is ice cold?", answer: str = "Yes") -> Trajectory:
    turns = [
        Turn("assistant", "Thought: look it up.\nAction: search[ice temperature]", True),
        Turn("user", "Observation: #1: Ice is frozen water.", False),
        Turn("assistant", f"Action: finish[{answer}]", True),
        Turn("user", "Observation: Episode finished", False),
    ]
    return Trajectory("q1", question, turns, reward, float(reward), "yes", answer)


# --- trajectories -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, action",
    [
        ("Thought: hm.\nAction: search[Genghis Khan]", ("search", "Genghis Khan")),
        ("Action: calculator[(2+3)*[4]]\nObservation: 20", ("calculator", "(2+3)*[4]")),
        ("Action: finish[Yes]\nAction: search[x]", ("finish", "Yes")),
        ("Action:Finish[ no ]", ("finish", "no")),
        ("Thought: I am not sure.", None),
        ("Action: search Genghis", None),
    ],
)
def test_parse_action(text, action):
    assert parse_action(text) == action


def test_cut_turn_drops_what_follows_the_first_action_line():
    assert cut_turn("Thought: a\nAction: search[b]\nObservation: made up\nAction: finish[c]") == (
        "Thought: a\nAction: search[b]"
    )
    assert cut_turn("Thought: no action yet Observation: x") == "Thought: no action yet"


def test_nat_release_joins_questions_by_id(data_dir):
    task = get_agent_task("strategyqa")
    train = load_problems(task, "train", data_dir)
    pos = read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_positive.json", train)
    neg = read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_negative.json", train)
    assert (len(pos), len(neg)) == (1070, 1263)
    assert all(t.reward for t in pos) and not any(t.reward for t in neg)
    by_id = {p.id: p for p in train}
    first = pos[0]
    assert first.question == by_id[first.id].question and first.answer in ("yes", "no")
    assert first.turns[0].role == "assistant" and first.turns[0].loss and not first.turns[1].loss
    assert first.prediction == "Yes" and first.meta["source"] == "0.5"
    assert sum(not t.turns for t in neg) == 7  # the release has 7 empty negatives; kept, never trained on


def test_trajectory_files_round_trip_and_bad_rows_are_named(tmp_path, data_dir):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [trajectory(), trajectory(False, answer="No")])
    back = read_trajectories(path)
    assert back == [trajectory(), trajectory(False, answer="No")]
    path.write_text(path.read_text() + '{"id": 1, "question": "q", "reward": true, "turns": [{"role": "bot"}]}\n')
    with pytest.raises(LikraError, match=r"t.jsonl: line 3: turn 0: missing field 'content'"):
        read_trajectories(path)
    bad = tmp_path / "release.json"
    bad.write_text(json.dumps([{"id": "nope", "conversations": [], "info": {"reward": True}}]))
    train = load_problems("strategyqa", "train", data_dir)
    with pytest.raises(LikraError, match=r"release.json: row 1: id nope is not in the task's problems"):
        read_trajectories(bad, train)
    bad.write_text("[{")
    with pytest.raises(LikraError, match=r"release\.json: malformed JSON"):
        read_trajectories(bad, train)


def test_problems_of_every_task_load(data_dir):
    gsm = load_problems("gsm8k", "test", data_dir)
    assert len(gsm) == 1319 and gsm[0].answer == "18"
    assert load_problems("svamp", None, data_dir)[0].answer == "51"
    assert load_problems("multiarith", None, data_dir)[0].answer == "39"
    assert load_problems("asdiv", None, data_dir)[0].answer == "9"
    assert {p.answer for p in load_problems("strategyqa", "test", data_dir)} == {"yes", "no"}
    hotpot = load_problems("hotpotqa", "dev", data_dir)
    assert len(hotpot) == 500 and hotpot[0].answer == "Richard Strauss"
    with pytest.raises(LikraError, match="--split dev: task gsm8k has splits train, test"):
        load_problems("gsm8k", "dev", data_dir)


# --- templates ----------------------------------------------------------------------------------------


def test_templates_tell_positives_from_negatives():
    assert prefix("negative-aware", True) == POSITIVE and prefix("negative-aware", False) == NEGATIVE
    assert prefix("none", True) == prefix("none", False) == ""
    assert (prefix("tags", True), prefix("tags", False)) == ("[Correct]", "[Incorrect]")
    assert [prefix("graded", False, s) for s in (0.0, 0.6, 1.0)] == [
        "[Score: none]",
        "[Score: partial]",
        "[Score: full]",
    ]
    positive = first_message("Q?", "search", "yesno", "negative-aware")
    assert POSITIVE in positive and positive.endswith("Question: Q?") and "search[query]" in positive
    assert "calculator[expression]" in first_message("Q?", "calculator", "numeric", "none")


def test_only_flagged_agent_turns_are_trained_on(tokenizer):
    t = trajectory(False, answer="No")
    ids, mask = encode_trajectory(tokenizer, t, "search", "yesno", "negative-aware", 4096)
    text = tokenizer.decode(ids)
    assert NEGATIVE in text and "Question: Is ice cold?" in text
    trained = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == (
        "Thought: look it up.\nAction: search[ice temperature]<|im_end|>\nAction: finish[No]<|im_end|>\n"
    )
    t.turns[0].loss = False  # a turn not flagged for loss is context only
    ids, mask = encode_trajectory(tokenizer, t, "search", "yesno", "negative-aware", 4096)
    assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "Action: finish[No]<|im_end|>\n"
    short, short_mask = encode_trajectory(tokenizer, t, "search", "yesno", "negative-aware", 10)
    assert len(short) == len(short_mask) == 10


def test_segments_without_a_chat_template_are_plain_lines():
    class Plain:
        chat_template = None

    conversation = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Action: finish[1]"}]
    assert segments(Plain(), conversation, [False, True]) == [("Q\n", False), ("Action: finish[1]\n", True)]


# --- tools --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, value",
    [
        ("2+3*4", "14"),
        ("(1+2)**3", "27"),
        ("7/2", "3.5"),
        ("2^10", "1024"),
        ("1,000 * 3", "3000"),
        ("$5 + 2.5", "7.5"),
        ("-(-3)", "3"),
        ("10 // 3 + 10 % 3", "4"),
        ("0.1 + 0.2", "0.3"),
    ],
)
def test_calculator_does_arithmetic(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression, message",
    [
        ("__import__('os').system('echo hi')", "only numbers"),
        ("().__class__.__bases__", "only numbers"),
        ("(lambda: 1)()", "only numbers"),
        ("abs(-1)", "only numbers"),
        ("x + 1", "only numbers"),
        ("'a' * 10", "only numbers"),
        ("9**9**9", "out of range"),
        ("2**100000", "out of range"),
        ("10.0**400", "out of range"),
        ("1e308 * 10", "out of range"),
        ("(-8) ** 0.5", "not a real number"),
        ("1/0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(" * 1000 + "1" + ")" * 1000, "longer than"),
        ("-" * 250 + "1", "nested too deeply"),
        ("1 +", "cannot parse"),
        ("", "empty"),
    ],
)
def test_calculator_refuses_everything_but_arithmetic(expression, message):
    """Hostile input costs the agent a step (a ToolError becomes its observation), never time or the run."""
    started = time.perf_counter()
    with pytest.raises(ToolError, match=message):
        calculate(expression)
    assert time.perf_counter() - started < 1.0


def test_calculator_takes_deep_parentheses():
    assert calculate("(" * 140 + "1" + ")" * 140) == "1"


def test_bm25_search_finds_the_passage():
    search = Search(BM25Search(["Ice is frozen water.", "Paris is the capital of France.", "Ice is frozen water."]))
    assert search.backend.passages == ["Ice is frozen water.", "Paris is the capital of France."]
    assert search("capital of France").startswith("#1: Paris is the capital of France.")
    assert search("zzzz qqqq") == "No results."
    with pytest.raises(ToolError, match="empty search query"):
        search("  ")
    assert snippets("Observation:  #1: a b #2: c") == ["a b", "c"]


def test_http_search_backend():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"results": [{"text": f"about {self.path}"}, "second"]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = HTTPSearch(f"http://127.0.0.1:{server.server_port}/search").search("ice cold", 3)
        assert found == ["about /search?q=ice+cold&k=3", "second"]
    finally:
        server.shutdown()
    with pytest.raises(ToolError, match="search service failed"):
        HTTPSearch(f"http://127.0.0.1:{server.server_port}/search", timeout=0.5).search("x", 1)


# --- checkers -----------------------------------------------------------------------------------------


def test_checkers():
    assert to_number("$1,234.50") == 1234.5 and to_number("3/4") == 0.75 and to_number("none") is None
    assert check_numeric("18 dollars", "18").correct and check_numeric("18.0", "18").correct
    assert not check_numeric("17", "18").correct and not check_numeric(None, "18").correct
    assert check_yes_no("Yes, because ice is cold.", "yes").correct and check_yes_no("False", "no").correct
    assert not check_yes_no("Unclear", "yes").correct and not check_yes_no("no", "yes").correct
    assert check_f1("The Richard Strauss", "Richard Strauss") == check("f1", "richard strauss.", "Richard Strauss")
    partial = check_f1("Strauss", "Richard Strauss")
    assert not partial.correct and partial.score == pytest.approx(2 / 3)
    assert check_f1("no", "yes").score == 0.0


# --- the agent loop -----------------------------------------------------------------------------------


class Scripted:
    """A fake model: the n-th turn of every episode is ``script[n]`` (a function of the conversation)."""

    def __init__(self, *script):
        self.script, self.calls = script, []

    def __call__(self, conversations, temperature, seed):
        self.calls.append(conversations)
        return [self.script[(len(c) - 1) // 2](c) for c in conversations]


def test_agent_loop_runs_tools_and_turns_their_errors_into_observations():
    task = get_agent_task("gsm8k")
    problems = [Problem("a", "What is 6 times 7?", "42"), Problem("b", "What is 2 plus 2?", "4")]
    model = Scripted(
        lambda c: "Thought: multiply.\nAction: calculator[__import__('os')]\nObservation: invented",
        lambda c: "Action: calculator[6*7]",
        lambda c: "I think I know.",  # no action
        lambda c: "Action: finish[42]" if "6 times" in c[0]["content"] else "Action: finish[5]",
    )
    found = run_agent(model, problems, task, {"calculator": calculate}, "negative-aware", max_steps=6)
    a, b = found
    assert a.turns[0].content == "Thought: multiply.\nAction: calculator[__import__('os')]"
    assert (
        a.turns[1].content == "Observation: calculator error: only numbers, + - * / // % ** and parentheses are allowed"
    )
    assert a.turns[3].content == "Observation: 42"
    assert a.turns[5].content.startswith("Observation: Invalid action (no action)")
    assert a.prediction == "42" and a.reward and a.score == 1.0
    assert b.prediction == "5" and not b.reward
    assert a.meta == {"steps": 4, "tool_errors": 1, "invalid_actions": 1, "stop": "finish", "temperature": 0.0}
    assert all(t.loss == (t.role == "assistant") for t in a.turns)
    assert POSITIVE in model.calls[0][0][0]["content"]  # asked for a successful trajectory
    metrics = summarize(found)
    assert metrics["accuracy"] == 0.5 and metrics["mean_steps"] == 4 and metrics["tool_error_rate"] == 0.5
    assert metrics["finished"] == 1.0


def test_agent_loop_stops_after_max_steps():
    task = get_agent_task("strategyqa")
    model = Scripted(*[lambda c: "Action: search[ice]"] * 3)
    [t] = run_agent(model, [Problem("a", "Is ice cold?", "yes")], task, {"search": lambda q: "#1: cold"}, max_steps=3)
    assert t.meta["stop"] == "max_steps" and t.prediction is None and not t.reward and t.meta["steps"] == 3
    assert len(model.calls) == 3


def test_generation_on_the_tiny_model(tokenizer, tiny_model):
    generate = HFGenerator(tiny_model, tokenizer, max_new_tokens=5, batch_size=2)
    conversations = [[{"role": "user", "content": "Q" * n}] for n in (1, 30, 7)]
    first = generate(conversations, 0.0, 1)
    assert len(first) == 3 and first == generate(conversations, 0.0, 1)  # greedy is repeatable
    assert first[0] == generate(conversations[:1], 0.0, 1)[0]  # left padding does not change the answer
    sampled = generate(conversations, 1.0, 2)
    assert sampled == generate(conversations, 1.0, 2) and sampled != first  # seeded sampling


# --- resumable runs -----------------------------------------------------------------------------------


def test_run_chunks_skips_finished_chunks(tmp_path):
    problems = [Problem(str(i), f"q{i}", "1") for i in range(5)]
    calls = []

    def run(part):
        calls.append([p.id for p in part])
        return [Trajectory(p.id, p.question, [], False, 0.0) for p in part]

    first = run_chunks(problems, tmp_path, run, chunk=2)
    assert calls == [["0", "1"], ["2", "3"], ["4"]]
    (tmp_path / "part-00002.jsonl").unlink()  # as if killed during the second chunk
    assert run_chunks(problems, tmp_path, run, chunk=2) == first
    assert calls[3:] == [["2", "3"]]


def test_a_folder_refuses_a_run_with_other_options(tmp_path):
    claim_folder(tmp_path, {"task": "gsm8k", "limit": 5})
    claim_folder(tmp_path, {"task": "gsm8k", "limit": 10})  # a longer run of the same evaluation resumes
    with pytest.raises(LikraError, match="holds a run with other options \\(task\\)"):
        claim_folder(tmp_path, {"task": "svamp", "limit": 5})


# --- training and evaluation on the tiny model --------------------------------------------------------


@pytest.fixture
def release_sample(tmp_path, data_dir):
    """A few StrategyQA trajectories of the NAT release, in our JSONL format."""
    train = load_problems("strategyqa", "train", data_dir)
    test = {p.question for p in load_problems("strategyqa", "test", data_dir)}
    pos = [
        t
        for t in read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_positive.json", train)
        if t.question not in test
    ][:6]
    neg = [
        t
        for t in read_trajectories(data_dir / STRATEGYQA / "strategyqa_gpt-3.5_negative.json", train)
        if t.question not in test and t.turns
    ][:6]
    write_jsonl(tmp_path / "pos.jsonl", pos)
    write_jsonl(tmp_path / "neg.jsonl", neg)
    return tmp_path / "pos.jsonl", tmp_path / "neg.jsonl"


def test_nat_training_writes_a_plain_peft_adapter(tmp_path, tokenizer, tiny_model_dir, data_dir, release_sample):
    from peft import PeftModel

    from likra.nat.training import NATConfig, select_trajectories, train_agent

    pos, neg = release_sample
    config = NATConfig(pos=[str(pos)], neg=[str(neg)], neg_num=4, data_dir=str(data_dir), max_length=256)
    data = select_trajectories(config)
    assert (data.positives, data.negatives) == (6, 4)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    result = train_agent(loaded, config, tmp_path / "run", data=data)
    step = tmp_path / "run" / "step-10"
    manifest = json.loads((step / "likra.json").read_text())
    assert result.checkpoints == [step] and manifest["format"] == "likra-nat-checkpoint"
    assert manifest["data"]["positives"] == 6 and manifest["template"] == "negative-aware"
    adapted = PeftModel.from_pretrained(tiny_llama(len(tokenizer)), str(step / "agent"))  # plain peft loads it
    assert adapted.peft_config["default"].r == 16
    config = AgentEvalConfig(checkpoint=str(tmp_path / "run"), limit=2, max_steps=1, max_new_tokens=4,
                             data_dir=str(data_dir))  # fmt: skip
    results = evaluate_agent(config, tmp_path / "eval")
    assert results["checkpoint"] == str(step) and results["template"] == "negative-aware"
    assert results["metrics"]["n"] == 2
    only_pos = select_trajectories(NATConfig(pos=[str(pos)], neg=[str(neg)], neg_num=0, data_dir=str(data_dir)))
    assert (only_pos.positives, only_pos.negatives) == (6, 0)


def test_trajectories_of_evaluation_questions_are_dropped(data_dir):
    from likra.nat.training import NATConfig, select_trajectories

    files = data_dir / STRATEGYQA
    config = NATConfig(
        pos=[str(files / "strategyqa_gpt-3.5_positive.json")],
        neg=[str(files / "strategyqa_gpt-3.5_negative.json")],
        data_dir=str(data_dir),
    )
    data = select_trajectories(config)
    test = {p.question.lower() for p in load_problems("strategyqa", "test", data_dir)}
    assert data.dropped > 0 and data.empty == 7
    assert not any(t.question.lower() in test for t in data.trajectories)
    assert data.positives + data.negatives + data.dropped + data.empty == 1070 + 1263


def test_full_fine_tuning_saves_a_model_folder(tmp_path, tokenizer, tiny_model_dir, data_dir, release_sample):
    from likra.models import load_model
    from likra.nat.training import NATConfig, train_agent

    pos, _ = release_sample
    config = NATConfig(pos=[str(pos)], full=True, lr=1e-3, data_dir=str(data_dir), max_length=512)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    train_agent(loaded, config, tmp_path / "full")
    reloaded = load_model(str(tmp_path / "full" / "step-6" / "model"))
    trained = loaded.model.state_dict()
    assert all((reloaded.model.state_dict()[k] == v).all() for k, v in trained.items())
    assert not (tiny_llama(len(tokenizer)).state_dict()["model.norm.weight"] == trained["model.norm.weight"]).all()


def test_agent_evaluation_end_to_end_and_resumed(tmp_path, tiny_model_dir, data_dir):
    config = AgentEvalConfig(
        task="gsm8k", model=str(tiny_model_dir), limit=3, max_steps=2, max_new_tokens=6, data_dir=str(data_dir)
    )
    results = evaluate_agent(config, tmp_path / "eval")
    items = read_trajectories(tmp_path / "eval" / "items.jsonl")
    assert results["metrics"]["n"] == 3 and len(items) == 3 and results["template"] == "negative-aware"
    assert all(t.meta["steps"] >= 1 for t in items)
    again = evaluate_agent(config, tmp_path / "eval")
    assert again["metrics"] == results["metrics"]


# --- the command line ---------------------------------------------------------------------------------


def test_nat_cli_errors(tmp_path, data_dir, release_sample):
    pos, neg = release_sample
    out = str(tmp_path / "run")
    assert_one_line_error(
        likra("nat", "train", "--out", out, "--pos", str(pos), "--template", "maybe"), "--template maybe"
    )
    assert_one_line_error(
        likra("nat", "train", "--out", out, "--pos", str(pos), "--neg-num", "3", data_dir=data_dir), "--neg-num 3"
    )
    assert_one_line_error(
        likra("nat", "train", "--out", out, "--pos", str(neg), data_dir=data_dir), "are failed", str(neg)
    )
    assert_one_line_error(likra("nat", "eval", "--out", out, "--task", "chess", data_dir=data_dir), "--task chess")
    assert_one_line_error(likra("nat", "collect", "--out", out, "--temperatures", "hot"), "--temperatures hot")
    assert_one_line_error(
        likra(
            "nat", "eval", "--out", out, "--task", "hotpotqa", "--corpus", str(tmp_path / "none.txt"), data_dir=data_dir
        ),
        "none.txt",
    )


# --- solved examples ----------------------------------------------------------------------------------


def test_gsm8k_solutions_become_calculator_episodes(data_dir):
    from likra.nat.demos import demo_picker, demonstration, gsm8k_gold

    problem = load_problems("gsm8k", "train", data_dir)[0]
    gold = gsm8k_gold(problem)
    assert [t.content for t in gold.turns] == [
        "Thought: Natalia sold 48/2 = 24 clips in May.\nAction: calculator[48/2]",
        "Observation: 24",
        "Thought: Natalia sold 48+24 = 72 clips altogether in April and May.\nAction: calculator[48+24]",
        "Observation: 72",
        "Action: finish[72]",
    ]
    assert demonstration(gold).startswith("Question: Natalia sold clips")
    pick = demo_picker(get_agent_task("gsm8k"), 2, seed=1, data_dir=str(data_dir))
    shown = pick(problem)
    assert (
        len(shown) == 2
        and shown == pick(problem)
        and all(not s.startswith(f"Question: {problem.question}") for s in shown)
    )
    model = Scripted(lambda c: "Action: finish[72]")
    run_agent(model, [problem], get_agent_task("gsm8k"), {"calculator": calculate}, demos=pick)
    assert "Solved examples:" in model.calls[0][0][0]["content"] and shown[0] in model.calls[0][0][0]["content"]
    with pytest.raises(LikraError, match="--shots 2: task strategyqa has no built-in examples"):
        demo_picker(get_agent_task("strategyqa"), 2, seed=1, data_dir=str(data_dir))


def test_collect_writes_checked_trajectories_per_temperature(tmp_path, tiny_model_dir, data_dir):
    from likra.nat.runs import CollectConfig, collect

    config = CollectConfig(
        model=str(tiny_model_dir), limit=2, temperatures=[0.0, 1.0], shots=1, max_steps=1, max_new_tokens=4,
        data_dir=str(data_dir),
    )  # fmt: skip
    summary = collect(config, tmp_path / "c")
    found = read_trajectories(tmp_path / "c" / "negative.jsonl")  # a random model solves nothing
    assert summary["problems"] == 2 and summary["negatives"] == 4 and summary["positives"] == 0
    assert sorted(t.meta["temperature"] for t in found) == [0.0, 0.0, 1.0, 1.0]
    assert (tmp_path / "c" / "positive.jsonl").read_text() == ""
    assert set(summary["per_temperature"]) == {"0", "1"}


def test_gold_episodes_teach_an_agent_that_then_collects_elsewhere(tmp_path, tokenizer, tiny_model_dir, data_dir):
    """The bootstrap for a model that cannot follow the action format: reference solutions → a first agent →
    collection (with that agent's prompt) on other questions."""
    from likra.nat.runs import CollectConfig, collect
    from likra.nat.training import NATConfig, train_agent

    gold = tmp_path / "gold.jsonl"
    done = likra("nat", "gold", "--out", str(gold), "--limit", "6", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    episodes = read_trajectories(gold)
    assert len(episodes) == 6 and all(t.reward for t in episodes)
    assert episodes[0].turns[0].content.startswith("Thought: Natalia sold 48/2")
    config = NATConfig(task="gsm8k", pos=[str(gold)], template="none", data_dir=str(data_dir), max_length=256)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    train_agent(loaded, config, tmp_path / "warm")
    config = CollectConfig(checkpoint=str(tmp_path / "warm"), skip=[str(gold)], limit=3, temperatures=[0.0],
                           max_steps=1, max_new_tokens=4, data_dir=str(data_dir))  # fmt: skip
    summary = collect(config, tmp_path / "c")
    found = read_trajectories(tmp_path / "c" / "negative.jsonl")  # a random model solves nothing
    assert summary["template"] == "none" and summary["checkpoint"] == str(tmp_path / "warm" / "step-6")
    assert len(found) == 3 and not {t.question for t in found} & {t.question for t in episodes}
    assert_one_line_error(likra("nat", "gold", "--out", str(gold), "--task", "strategyqa"), "--task strategyqa")


def test_compare_tests_agents_on_the_same_problems(tmp_path):
    from dataclasses import replace

    from likra.nat.compare import compare_evals, run_name

    def agent(folder: str, rewards: list[bool], predictions: list[str]) -> str:
        done = {"steps": 2, "stop": "finish"}
        runs = [
            replace(trajectory(r, answer=a), id=f"q{i}", answer="no" if i % 4 else "yes", meta=done)
            for i, (r, a) in enumerate(zip(rewards, predictions, strict=True))
        ]
        write_jsonl(tmp_path / folder / "eval" / "items.jsonl", runs)
        return str(tmp_path / folder / "eval")

    first = agent("pos-only", [False] * 12, ["No"] * 8 + ["Yes"] * 4)
    second = agent("nat", [True] * 10 + [False] * 2, ["No."] * 12)
    rows = compare_evals([first, second])
    assert [r["run"] for r in rows] == ["pos-only", "nat"]
    assert run_name(Path("out/gsm8k/nat/eval-multiarith")) == "nat" and run_name(Path("out/evals/nat")) == "nat"
    assert rows[0]["p_vs_first"] == 1.0 and rows[1]["p_vs_first"] == pytest.approx(2 / 2**10)
    assert rows[0]["top_answer_share"] == pytest.approx(8 / 12) and rows[1]["top_answer_share"] == 1.0  # "No." = "no"
    assert rows[1]["majority_baseline"] == pytest.approx(9 / 12)
    other = tmp_path / "other" / "items.jsonl"
    write_jsonl(other, [replace(trajectory(), id="elsewhere")])
    with pytest.raises(LikraError, match="scored other problems"):
        compare_evals([first, str(other.parent)])
    assert_one_line_error(likra("nat", "compare", first, str(tmp_path / "missing")), "missing: no items.jsonl")
    done = likra("nat", "compare", first, second, "--csv", str(tmp_path / "t.csv"))
    assert done.returncode == 0 and "always the most common gold answer: 0.7500" in done.stdout
    assert (tmp_path / "t.csv").read_text().splitlines()[2].startswith("nat,12,0.8333")
