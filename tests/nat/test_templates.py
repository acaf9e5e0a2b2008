"""likra.nat.templates: prompts and the trained-on turns."""

from __future__ import annotations

from likra.nat.templates import NEGATIVE, POSITIVE, encode_trajectory, first_message, prefix, segments

from .helpers import trajectory


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
