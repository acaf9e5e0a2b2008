"""The scoring engine: (context, continuation) pairs → summed log-likelihoods of the continuations.

Tokenisation is lm-evaluation-harness's (trailing spaces of the context move to the continuation; the
continuation's tokens are the tail of the encoded whole), so the numbers agree with it. The work is not:

* every distinct context is encoded **once**, and all its continuations are packed behind it in the same
  row, each attending to the context and to itself only (a tree-shaped 4D attention mask with position ids
  that restart after the context). lm-eval runs the whole context again for every choice;
* vocabulary logits are computed only at the positions that predict a continuation token, not at every
  position (the LM head is a large share of a small model's cost);
* rows are sorted by length and batched up to a token budget, so padding is a few percent at most;
* a long context that fills a batch alone runs under the model's own causal kernel (which skips the masked
  half) and its continuations then attend to its cached keys;
* contexts that share a long token prefix across requests (MMLU's subject line and five dev examples before
  every question of a subject) form a group: the prefix runs once per head under causal attention, and the
  rest of every context, with its continuations, is scored over the prefix's cached keys and values (what
  serving systems call prefix caching; one prefix's cache is held at a time). Every request keeps exactly
  the tokens it has alone: the prefix is a run of tokens that the contexts' own tokenisations share.

Written by hand because neither transformers nor lm-eval offers shared-prefix scoring; the model itself is
the unmodified transformers module, called with a custom mask.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from likra.errors import LikraError

logger = logging.getLogger("likra")
Pair = tuple[str, str]
# peft's name for "no adapter" in a mixed-adapter batch
ADAPTER_NAME = {"base": "__base__"}
TokenPair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class LogLikelihood:
    """The summed log-probability of a continuation, its token count, and whether greedy decoding yields it."""

    logprob: float
    n_tokens: int
    greedy: bool


@dataclass(frozen=True)
class _Row:
    context: list[int]
    continuations: list[list[int]]
    request_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(c) - 1 for c in self.continuations)


def _common_length(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share, at most ``limit``."""
    n = 0
    for x, y in zip(a[:limit], b[:limit], strict=False):
        if x != y:
            break
        n += 1
    return n


def _split_trailing_space(context: str, continuation: str) -> Pair:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def default_prefix_token(tokenizer: Any) -> int:
    """lm-eval's prefix for an empty context: BOS if the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pairs(tokenizer: Any, pairs: Sequence[Pair], prefix_token_id: int | None = None) -> list[TokenPair]:
    """lm-eval's ``_encode_pair`` for every pair (one batched tokenizer call): trailing spaces of the context
    move to the continuation, whose tokens are the tail of the encoded whole. Training uses it too, so a head
    learns exactly the tokens that evaluation scores."""
    split = [_split_trailing_space(c, x) if c else (c, x) for c, x in pairs]
    contexts = [c for c, _ in split if c]
    wholes = [c + x if c else x for c, x in split]
    unique = list(dict.fromkeys(contexts + wholes))
    table = dict(zip(unique, tokenizer(unique)["input_ids"] if unique else [], strict=True))
    prefix = default_prefix_token(tokenizer) if prefix_token_id is None else prefix_token_id
    out = []
    for context, whole in zip((c for c, _ in split), wholes, strict=True):
        if not context:
            out.append(([prefix], table[whole]))
            continue
        context_ids = table[context]
        out.append((context_ids, table[whole][len(context_ids) :]))
    return out


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean (batch, query, key) → additive float mask (batch, 1, query, key), as eager and SDPA take."""
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def masked_hidden_states(
    model: Any,
    ids: torch.Tensor,
    positions: torch.Tensor,
    allowed: torch.Tensor,
    key_positions: torch.Tensor | None = None,
    cache: Any = None,
) -> torch.Tensor:
    """Final hidden states of the decoder body (no LM head) under a custom mask.

    ``allowed`` is (batch, query, key); with a ``cache`` the keys are the cached tokens, then the queries, and
    ``key_positions`` their positions. Used by scoring (shared-prefix trees) and training (packed rows).
    """
    key_positions = positions if key_positions is None else key_positions
    device = model.device
    dtype = model.get_input_embeddings().weight.dtype
    mask: Any = _additive(allowed, dtype).to(device)
    config = model.config
    if "sliding_attention" in (getattr(config, "layer_types", None) or []):
        # models that mix sliding-window and full attention want one mask per kind
        near = (positions[:, :, None] - key_positions[:, None, :]) < config.sliding_window
        mask = {"full_attention": mask, "sliding_attention": _additive(allowed & near, dtype).to(device)}
    out = model.get_decoder()(
        input_ids=ids.to(device),
        attention_mask=mask,
        position_ids=positions.to(device),
        use_cache=cache is not None,
        **cache_kwarg(model, cache),
    )
    return out.last_hidden_state


def cache_kwarg(model: Any, cache: Any) -> dict[str, Any]:
    """The decoder's KV-cache argument under its current name: transformers 5.2x renamed ``past_key_values`` to
    ``cache`` (the old name warns on every call and goes in 5.40); older 5.x releases know only the old one."""
    parameters = inspect.signature(model.get_decoder().forward).parameters
    return {"cache" if "cache" in parameters else "past_key_values": cache}


def output_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits (float32) for selected hidden states, with the model's final soft-capping if any."""
    logits = model.get_output_embeddings()(hidden).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


CPU_BATCH_TOKENS = 1024  # a CPU's budget (and every budget's floor): larger batches gained nothing on 2 cores
MAX_AUTO_BATCH_TOKENS = 65536
MAX_ROW_ANSWER_TOKENS = 1024


def auto_batch_tokens(model: Any, fraction: float = 0.5) -> int:
    """A token budget from the free memory of the model's GPU (on the CPU, ``CPU_BATCH_TOKENS``): per padded token
    a pass holds one layer's MLP activations (three of the intermediate width) and a few hidden-width tensors,
    its row of the attention mask, and the float32 logits of its share of answer tokens. An estimate: a budget that
    proves too large is halved on the first out-of-memory error."""
    if model.device.type != "cuda":
        return CPU_BATCH_TOKENS
    config = model.config
    free, _ = torch.cuda.mem_get_info(model.device)
    width = model.get_input_embeddings().weight.element_size()
    hidden = getattr(config, "hidden_size", 4096)
    intermediate = getattr(config, "intermediate_size", 4 * hidden)
    per_token = width * (3 * intermediate + 4 * hidden) + 2 * 2048 + 4 * getattr(config, "vocab_size", 32000) // 4
    tokens = int(free * fraction) // per_token
    return max(CPU_BATCH_TOKENS, min(MAX_AUTO_BATCH_TOKENS, tokens // 1024 * 1024))


class Scorer:
    """Scores continuations with a causal LM; see the module docstring for how.

    ``batch_tokens`` bounds the padded tokens of one forward pass (None: ``auto_batch_tokens``; halved on
    running out of memory, see ``_forward_backing_off``); ``max_length`` defaults to the model's
    context size (longer contexts are cut on the left, as lm-eval does). A context of ``two_phase_from``
    tokens or more that fills a batch alone is run in two calls (see ``_hidden_two_phase``). Contexts sharing
    a prefix of ``shared_prefix_from`` tokens or more are scored over that prefix computed once (see
    ``_prefix_groups``; 0 turns it off).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_tokens: int | None = 1024,
        max_length: int | None = None,
        two_phase_from: int = 256,
        shared_prefix_from: int = 32,
        prefix_token_id: int | None = None,
        heads: Sequence[str] | None = None,
    ) -> None:
        self.model = model
        # With ``heads`` (peft adapter names; "base" = no adapter) every row is scored under each head in the
        # same forward pass (peft's mixed-adapter batches): one call yields base, positive and negative numbers.
        self.heads = tuple(heads) if heads else None
        self.n_heads = len(self.heads) if self.heads else 1
        self.tokenizer = tokenizer
        batch_tokens = auto_batch_tokens(model) if batch_tokens is None else batch_tokens
        self.batch_tokens = batch_tokens
        self.backed_off = 0  # times an out-of-memory error halved the budget
        self.cut_answers = 0  # answers longer than the context, scored on their last max_length tokens
        self.two_phase_from = two_phase_from
        self.shared_prefix_from = shared_prefix_from
        # a row's answers after one context: an eighth of the budget, and never so many that a GPU's large budget
        # makes one row too long to split when memory runs out (the CPU's 1024 gives 128, as always)
        self.row_answer_tokens = min(max(64, batch_tokens // 8), MAX_ROW_ANSWER_TOKENS)
        config = model.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", None) or 2048
        self.prefix_token_id = default_prefix_token(tokenizer) if prefix_token_id is None else prefix_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # --- tokenisation ---------------------------------------------------------------------------------

    def encode(self, pairs: Sequence[Pair]) -> list[TokenPair]:
        """lm-eval's ``_encode_pair`` for every pair, with one batched tokenizer call."""
        return encode_pairs(self.tokenizer, pairs, self.prefix_token_id)

    # --- scoring --------------------------------------------------------------------------------------

    def loglikelihoods(
        self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None
    ) -> list[LogLikelihood]:
        """Summed log-likelihood of each continuation given its context."""
        return self.loglikelihoods_tokens(self.encode(pairs), progress)

    def loglikelihoods_tokens(
        self, encoded: Sequence[TokenPair], progress: Callable[[int], None] | None = None
    ) -> list[LogLikelihood]:
        """As ``loglikelihoods``, for pairs already tokenised (``progress`` gets the requests done per batch)."""
        if self.n_heads > 1:
            raise ValueError("a Scorer with several heads answers through loglikelihoods_by_head")
        return next(iter(self._score(encoded, progress).values()))

    def loglikelihoods_by_head(
        self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None
    ) -> dict[str, list[LogLikelihood]]:
        """Per head, the summed log-likelihood of each continuation (one forward pass serves all heads)."""
        return self._score(self.encode(pairs), progress)

    def loglikelihoods_tokens_by_head(
        self, encoded: Sequence[TokenPair], progress: Callable[[int], None] | None = None
    ) -> dict[str, list[LogLikelihood]]:
        """As ``loglikelihoods_by_head``, for pairs already tokenised."""
        return self._score(encoded, progress)

    def _score(
        self, encoded: Sequence[TokenPair], progress: Callable[[int], None] | None
    ) -> dict[str, list[LogLikelihood]]:
        heads = self.heads or ("model",)
        results: list[list[LogLikelihood | None]] = [[None] * len(encoded) for _ in heads]
        for n_prefix, rows in self._prefix_groups(self._rows(encoded, results)):
            prefix = self._prefix_cache(rows[0].context[:n_prefix]) if n_prefix else None
            rests = [_Row(r.context[n_prefix:], r.continuations, r.request_ids) for r in rows]
            rests.sort(key=lambda r: (-r.length, r.context))
            for batch in self._batches(rests):
                for h, request_id, value in self._forward_backing_off(batch, prefix):
                    results[h][request_id] = value
                if progress is not None:
                    progress(sum(len(r.request_ids) for r in batch))
        assert all(r is not None for per_head in results for r in per_head)
        return dict(zip(heads, results, strict=True))  # type: ignore[arg-type]

    def _prefix_groups(self, rows: list[_Row]) -> list[tuple[int, list[_Row]]]:
        """Rows in groups that share their first n tokens, as (n, rows); n = 0 for the rest. A group needs n of
        ``shared_prefix_from`` tokens or more and must save a batch's worth of tokens: its own forward calls
        cost more than a few shared tokens save (Winogrande's option pairs, 16 shared tokens on average, ran
        1.6x slower in groups of two). Neighbours in sorted order share the longest prefixes, so one pass over
        the sorted rows finds the groups; a group's prefix leaves every context its last token (which predicts
        the first token of the continuations)."""
        if not self.shared_prefix_from:
            return [(0, rows)]
        groups: list[tuple[list[int], list[_Row]]] = []
        for row in sorted(rows, key=lambda r: r.context):
            if groups:
                prefix, members = groups[-1]
                n = _common_length(prefix, row.context, len(row.context) - 1)
                if n >= self.shared_prefix_from:
                    groups[-1] = (prefix[:n], [*members, row])
                    continue
            groups.append((row.context[:-1], [row]))
        alone: list[_Row] = []
        shared: list[tuple[int, list[_Row]]] = []
        for prefix, members in groups:
            if (len(members) - 1) * len(prefix) >= self.batch_tokens:
                shared.append((len(prefix), members))
            else:
                alone += members
        return ([(0, alone)] if alone else []) + shared

    @torch.inference_mode()
    def _prefix_cache(self, prefix: list[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The keys and values of ``prefix`` under each head (one row per head, head-major), by the model's own
        causal attention."""
        from transformers import DynamicCache

        cache = DynamicCache()  # full-length layers even for sliding-window models: our mask does the windowing
        ids = torch.tensor([prefix] * self.n_heads)
        with self._adapters(1):
            self.model.get_decoder()(input_ids=ids.to(self.model.device), use_cache=True,
                                     **cache_kwarg(self.model, cache))  # fmt: skip
        return len(prefix), [(layer.keys, layer.values) for layer in cache.layers]

    def _rows(self, encoded: Sequence[TokenPair], results: list[list[LogLikelihood | None]]) -> list[_Row]:
        """One row per distinct context, holding its continuations. Past ``row_answer_tokens`` of answers
        (thousands of answers after the same bare cue) a new row with the same context begins: attention in a
        row costs its length squared, while each answer needs only the context and itself."""
        open_rows: dict[tuple[int, ...], _Row] = {}
        rows: list[_Row] = []
        for request_id, (context, continuation) in enumerate(encoded):
            if not continuation:  # nothing to score (lm-eval would refuse); log-likelihood of nothing is 0
                for per_head in results:
                    per_head[request_id] = LogLikelihood(0.0, 0, True)
                continue
            if len(continuation) > self.max_length:  # lm-eval keeps the last tokens too; said once (``_cut``)
                continuation = continuation[-self.max_length :]
                self._cut()
            key = tuple(context)
            row = open_rows.get(key)
            if row is None or row.length + len(continuation) - 1 > len(context) + self.row_answer_tokens:
                row = open_rows[key] = _Row(list(context), [], [])
                rows.append(row)
            row.continuations.append(list(continuation))
            row.request_ids.append(request_id)
        return [self._truncate(row) for row in rows]

    def _cut(self) -> None:
        """Count an answer longer than the model's context; the first one is said (its score covers only its
        last ``max_length`` tokens, and runs in time quadratic in them)."""
        self.cut_answers += 1
        if self.cut_answers == 1:
            logger.warning("likra: an answer longer than the model's context (%d tokens) is scored on its last %d "
                           "tokens only, as lm-eval does", self.max_length, self.max_length)  # fmt: skip

    def _truncate(self, row: _Row) -> _Row:
        """Cut the context on the left so the longest continuation fits (lm-eval cuts per request)."""
        keep = self.max_length + 1 - max(len(c) for c in row.continuations)
        if len(row.context) <= keep:
            return row
        return _Row(row.context[-max(keep, 1) :], row.continuations, row.request_ids)

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        budget = self.batch_tokens // self.n_heads  # each row runs once per head
        batches: list[list[_Row]] = []
        for row in rows:  # sorted longest first: the first row of a batch sets its padded width
            if batches and (len(batches[-1]) + 1) * batches[-1][0].length <= budget:
                batches[-1].append(row)
            else:
                batches.append([row])
        return batches

    @contextmanager
    def _adapters(self, n_rows: int) -> Iterator[None]:
        """Route each copy of the batch through its head's LoRA weights (peft's mixed-adapter batches)."""
        if not self.heads:
            yield
            return
        names = [ADAPTER_NAME.get(head, head) for head in self.heads for _ in range(n_rows)]
        # the context manager peft's own ``generate(adapter_names=...)`` uses, applied to the bare decoder
        with self.model.base_model._enable_peft_forward_hooks(adapter_names=names):
            yield

    def _inputs(self, batch: list[_Row]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[list[int], ...]]:
        """A batch's token ids, positions and attention mask (each row's context, then its continuations, each
        attending to the context and causally to itself), and where each continuation token is predicted: the
        gathered rows and columns, the target tokens and the request each belongs to."""
        width = batch[0].length
        n_rows = len(batch)
        ids = torch.full((n_rows, width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((n_rows, width), dtype=torch.long)
        allowed = torch.zeros((n_rows, width, width), dtype=torch.bool)
        gather_rows: list[int] = []
        gather_cols: list[int] = []
        targets: list[int] = []
        owners: list[int] = []  # request id of each gathered position
        for b, row in enumerate(batch):
            n_ctx = len(row.context)
            ids[b, :n_ctx] = torch.tensor(row.context)
            positions[b, :n_ctx] = torch.arange(n_ctx)
            allowed[b, :n_ctx, :n_ctx] = torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()
            start = n_ctx
            for continuation, request_id in zip(row.continuations, row.request_ids, strict=True):
                m = len(continuation) - 1  # the last token is predicted, never fed
                end = start + m
                if m:
                    ids[b, start:end] = torch.tensor(continuation[:-1])
                    positions[b, start:end] = torch.arange(n_ctx, n_ctx + m)
                    allowed[b, start:end, :n_ctx] = True
                    allowed[b, start:end, start:end] = torch.ones(m, m, dtype=torch.bool).tril()
                # token j of the continuation is predicted at the context's last position (j = 0) or at
                # the position holding token j - 1
                gather_rows += [b] * (m + 1)
                gather_cols += [n_ctx - 1, *range(start, end)]
                targets += continuation
                owners += [request_id] * (m + 1)
                start = end
            pad = torch.arange(start, width)
            allowed[b, pad, pad] = True  # padding attends to itself only (a fully masked row gives NaN)
        return ids, positions, allowed, (gather_rows, gather_cols, targets, owners)

    @torch.inference_mode()
    def _forward(
        self, batch: list[_Row], prefix: tuple[int, list[tuple[torch.Tensor, torch.Tensor]]] | None = None
    ) -> list[tuple[int, int, LogLikelihood]]:
        """Scores one batch of rows; with a ``prefix`` (its length and per-layer keys and values, from
        ``_prefix_cache``), the rows are the rest of contexts that begin with it."""
        ids, positions, allowed, (gather_rows, gather_cols, targets, owners) = self._inputs(batch)
        n_rows = len(batch)
        n_heads = self.n_heads
        if n_heads > 1:  # head-major copies of the batch: rows [h * n_rows, (h + 1) * n_rows) run under head h
            ids, positions, allowed = (
                ids.repeat(n_heads, 1),
                positions.repeat(n_heads, 1),
                allowed.repeat(n_heads, 1, 1),
            )
        with self._adapters(n_rows):
            if prefix is not None:
                hidden = self._hidden_over_prefix(ids, positions, allowed, prefix)
            elif n_rows == 1 and len(batch[0].context) >= self.two_phase_from:
                hidden = self._hidden_two_phase(ids, positions, allowed, len(batch[0].context))
            else:
                hidden = masked_hidden_states(self.model, ids, positions, allowed)
        # made on the hidden states' device: CUDA refuses a gather or a comparison with CPU indices
        rows, cols, target = (torch.tensor(v, device=hidden.device) for v in (gather_rows, gather_cols, targets))
        out = []
        for h in range(n_heads):
            logits = output_logits(self.model, hidden[rows + h * n_rows, cols])
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
            # max's indices are argmax's (the first largest logit, as documented), in about half its time on a CPU
            token_greedy = logits.max(dim=-1).indices == target
            out += [(h, *pair) for pair in self._sum_by_owner(owners, token_logprobs, token_greedy)]
        return out

    def _forward_backing_off(
        self, batch: list[_Row], prefix: tuple[int, list[tuple[torch.Tensor, torch.Tensor]]] | None
    ) -> list[tuple[int, int, LogLikelihood]]:
        """``_forward``, and on running out of memory the budget halved and the batch scored again in smaller
        batches (as lm-eval's HFLM backs off): the same rows, so the same numbers but for the float rounding of
        another padded width; the new budget stays for the rest of the run, said once."""
        try:
            return self._forward(batch, prefix)
        except torch.OutOfMemoryError:
            pass  # (outside the handler, whose frame holds the failed pass's tensors)
        if len(batch) == 1:  # nothing left to split
            raise LikraError(
                f"out of memory scoring a row of {batch[0].length} tokens under {self.n_heads} head(s) alone at "
                f"{self.batch_tokens} padded tokens per pass; use a smaller --max-length, fewer heads or a larger "
                "device"
            ) from None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.batch_tokens //= 2
        self.backed_off += 1
        if self.backed_off == 1:
            logger.warning("likra: out of memory at %d padded tokens per pass; going on at %d (--batch-tokens %d "
                           "starts there)", 2 * self.batch_tokens, self.batch_tokens, self.batch_tokens)  # fmt: skip
        out = []
        for part in self._batches(batch):
            out += self._forward_backing_off(part, prefix)
        return out

    def _hidden_two_phase(
        self, ids: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor, n_ctx: int
    ) -> torch.Tensor:
        """One long row in two calls: the context alone under the model's own causal attention (whose kernel
        skips the masked half, which a custom mask cannot), then the continuations over its cached keys."""
        from transformers import DynamicCache

        cache = DynamicCache()  # full-length layers even for sliding-window models: our mask does the windowing
        device = self.model.device
        decoder = self.model.get_decoder()
        context = decoder(input_ids=ids[:, :n_ctx].to(device), use_cache=True, **cache_kwarg(self.model, cache))
        if ids.shape[1] == n_ctx:  # only one-token continuations: nothing more to feed
            return context.last_hidden_state
        rest = masked_hidden_states(
            self.model, ids[:, n_ctx:], positions[:, n_ctx:], allowed[:, n_ctx:], positions, cache
        )
        return torch.cat([context.last_hidden_state, rest], dim=1)

    def _hidden_over_prefix(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        allowed: torch.Tensor,
        prefix: tuple[int, list[tuple[torch.Tensor, torch.Tensor]]],
    ) -> torch.Tensor:
        """Rows that continue a shared prefix, over its cached keys and values: each head's prefix is repeated
        for that head's copies of the batch, positions move past the prefix, and every query sees all of it."""
        from transformers import DynamicCache

        n_prefix, layers = prefix
        n_rows = ids.shape[0] // self.n_heads
        cache = DynamicCache([(k.repeat_interleave(n_rows, 0), v.repeat_interleave(n_rows, 0)) for k, v in layers])
        sees_prefix = torch.ones((*allowed.shape[:2], n_prefix), dtype=torch.bool)
        key_positions = torch.cat([torch.arange(n_prefix).expand(ids.shape[0], -1), positions + n_prefix], dim=1)
        return masked_hidden_states(self.model, ids, positions + n_prefix, torch.cat([sees_prefix, allowed], dim=2),
                                    key_positions, cache)  # fmt: skip

    @staticmethod
    def _sum_by_owner(
        owners: list[int], token_logprobs: torch.Tensor, token_greedy: torch.Tensor
    ) -> list[tuple[int, LogLikelihood]]:
        out = []
        values = token_logprobs.double().cpu().tolist()
        greedy = token_greedy.cpu().tolist()
        start = 0
        while start < len(owners):
            end = start
            while end < len(owners) and owners[end] == owners[start]:
                end += 1
            logprob = sum(values[start:end])
            out.append((owners[start], LogLikelihood(logprob, end - start, all(greedy[start:end]))))
            start = end
        return out
