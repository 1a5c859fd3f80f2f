"""The network of every policy-ner model: BERT with feature channels in place of token types, optional
dense inputs, local convolutions and a CRF head (`PolicyNerBertForTokenClassification`).

This file imports nothing from policy-ner: it is saved into every model version as
`modeling_policy_ner.py`, with an `auto_map` in its config.json, so that a client without policy-ner
loads a version with `AutoModelForTokenClassification.from_pretrained(dir, trust_remote_code=True)`.
policy-ner itself registers these classes and never runs the saved copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from transformers import BertConfig, BertForTokenClassification
from transformers import initialization as init
from transformers.modeling_outputs import TokenClassifierOutput


def allowed_transitions(tags: Sequence[str]) -> torch.Tensor:
    """allowed[prev, next] under IOB2: `I-X` only after `B-X` or `I-X`. The same rule as
    `policy_ner.tags.iob2_transitions` (a test holds them equal), restated here because this file
    must run where policy-ner is not installed."""
    return torch.tensor(
        [[not t.startswith("I-") or (p[2:] == t[2:] and p[:2] in ("B-", "I-")) for t in tags] for p in tags]
    )


class PolicyNerBertConfig(BertConfig):
    """BERT's config plus the feature channels (`feature_sizes`, see features.py), the widths of the
    blocks of dense per-token features (`dense_sizes`, none by default; `dense_size` is their sum) and
    the optional head on top of the encoder (see `PolicyNerBertForTokenClassification`)."""

    model_type = "policy-ner-bert"

    def __init__(
        self,
        conv_layers: int = 0,
        conv_kernel: int = 3,
        crf: bool = False,
        feature_sizes: Sequence[int] = (),
        dense_sizes: Sequence[int] = (),
        pretrained_token_types: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pretrained_token_types = pretrained_token_types
        self.conv_layers = conv_layers
        self.conv_kernel = conv_kernel
        self.crf = crf
        self.feature_sizes = list(feature_sizes)
        self.dense_sizes = list(dense_sizes)

    @property
    def dense_size(self) -> int:
        """Width of a token's dense feature vector (0: the model takes none)."""
        return sum(self.dense_sizes)


class FeatureEmbedding(nn.Module):
    """Takes the place of BERT's token-type embedding: unpacks each packed feature id (mixed radix
    over `sizes`, see `features.Featurizer`) and sums one embedding per channel.

    With `token_types` (a pretrained base), it also holds the base's token-type table as `weight`
    (the name and shape the checkpoint has, so it loads as it is) and adds its type-0 row to every
    token, the vector the encoder was pretrained with; the channels then start at zero, so the
    untrained model computes exactly what the base encoder computes."""

    def __init__(self, sizes: Sequence[int], hidden_size: int, token_types: int = 0):
        super().__init__()
        self.sizes = list(sizes)
        self.channels = nn.ModuleList(nn.Embedding(size, hidden_size) for size in self.sizes)
        self.hidden_size = hidden_size
        self.weight = nn.Parameter(torch.zeros(token_types, hidden_size)) if token_types else None

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(
            *packed.shape,
            self.hidden_size,
            device=packed.device,
            # cast: `ModuleList[i]` is typed `Module`, whose attributes are typed `Tensor | Module`.
            dtype=cast(nn.Embedding, self.channels[0]).weight.dtype if self.channels else torch.float32,
        )
        for embedding, size in zip(self.channels, self.sizes):
            total = total + embedding(packed % size)
            packed = torch.div(packed, size, rounding_mode="floor")
        if self.weight is not None:
            total = total + self.weight[0]
        return total


class DenseInput(nn.Module):
    """Dense per-token features -> hidden size: each block (one dense feature, e.g. LAC's 256 BiGRU states
    or its 59 emission scores) layer-normalised on its own, since the blocks come on different scales
    (states in [-1, 1], emission scores spread over about ±14), then one linear projection of them all."""

    def __init__(self, sizes: Sequence[int], hidden_size: int):
        super().__init__()
        self.sizes = list(sizes)
        self.norms = nn.ModuleList(nn.LayerNorm(size) for size in self.sizes)
        self.projection = nn.Linear(sum(self.sizes), hidden_size)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        blocks = torch.split(dense, self.sizes, dim=-1)
        return self.projection(torch.cat([norm(block) for norm, block in zip(self.norms, blocks)], dim=-1))


class LocalContext(nn.Module):
    """Residual 1-D convolutions over the sequence: character n-gram detectors that a transformer
    trained from scratch on little text is slow to learn. Padding is zeroed before every
    convolution, so a window's output does not depend on how much padding its batch has."""

    def __init__(self, hidden_size: int, layers: int, kernel: int, dropout: float):
        super().__init__()
        self.convolutions = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel, padding=kernel // 2) for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        keep = attention_mask.unsqueeze(-1).to(hidden.dtype) if attention_mask is not None else None
        for convolution, norm in zip(self.convolutions, self.norms):
            inputs = hidden * keep if keep is not None else hidden
            local = convolution(inputs.transpose(1, 2)).transpose(1, 2)
            hidden = norm(hidden + self.dropout(nn.functional.gelu(local)))
        return hidden


class PolicyNerBertForTokenClassification(BertForTokenClassification):
    """`BertForTokenClassification` with per-character features in place of token types
    (`FeatureEmbedding`), optional dense per-token features (`dense_features`, batch x sequence x
    `dense_size`, zero on [CLS], [SEP] and padding) whose projection (`DenseInput`) is added to the word
    embeddings (before BERT's embedding LayerNorm, like the position and feature embeddings), optional
    `LocalContext` convolutions between the encoder and the classifier, and an optional linear-chain
    CRF over the tags.

    With a CRF, `logits` are the CRF's emission scores and the loss is the CRF's negative log
    likelihood per tagged token; transitions that IOB2 forbids (`O` -> `I-X`, `B-X` -> `I-Y`) are
    fixed at a large negative score, so training and decoding agree on what may follow what."""

    config_class = PolicyNerBertConfig
    crf_allowed: torch.Tensor
    """Buffer: allowed[prev, next] under IOB2 (`iob2_transitions`)."""

    def __init__(self, config: PolicyNerBertConfig):
        super().__init__(config)
        self.bert.embeddings.token_type_embeddings = FeatureEmbedding(
            config.feature_sizes,
            config.hidden_size,
            token_types=config.type_vocab_size if getattr(config, "pretrained_token_types", False) else 0,
        )
        dense_sizes = getattr(config, "dense_sizes", [])
        self.dense_input = DenseInput(dense_sizes, config.hidden_size) if dense_sizes else None
        self.local = (
            LocalContext(config.hidden_size, config.conv_layers, config.conv_kernel, config.hidden_dropout_prob)
            if config.conv_layers
            else None
        )
        n = config.num_labels
        if n is None:
            raise ValueError("PolicyNerBertConfig needs its tags (id2label)")
        self.crf_transitions = nn.Parameter(torch.zeros(n, n)) if config.crf else None
        self.crf_start = nn.Parameter(torch.zeros(n)) if config.crf else None
        self.register_buffer("crf_allowed", self._allowed_transitions(), persistent=False)
        self.post_init()

    def _allowed_transitions(self) -> torch.Tensor:
        id2label = self.config.id2label
        if id2label is None:
            raise ValueError("PolicyNerBertConfig needs its tags (id2label)")
        # PretrainedConfig makes the keys of id2label integers (its annotation also allows str keys).
        tags = cast("dict[int, str]", id2label)
        return allowed_transitions([tags[i] for i in range(len(tags))])

    def _init_weights(self, module):
        # `from_pretrained` builds the model without running `__init__`'s initialisers and fills what
        # the checkpoint lacks through this hook: the CRF's own parameters and mask must be set here.
        super()._init_weights(module)
        if module is self:
            init.copy_(self.crf_allowed, self._allowed_transitions())
            if self.crf_transitions is not None:
                init.zeros_(self.crf_transitions)
                init.zeros_(self.crf_start)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        dense_features=None,
        **kwargs,
    ) -> TokenClassifierOutput:
        if self.dense_input is not None:
            if dense_features is None:
                raise ValueError(f"this model takes dense_features ({self.config.dense_size} per token)")
            if inputs_embeds is None:
                inputs_embeds = self.bert.embeddings.word_embeddings(input_ids)
            inputs_embeds = inputs_embeds + self.dense_input(dense_features.to(inputs_embeds.dtype))
            input_ids = None
        elif dense_features is not None:
            raise ValueError("this model takes no dense_features (its config has no dense_sizes)")
        hidden = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        ).last_hidden_state
        if self.local is not None:
            hidden = self.local(hidden, attention_mask)
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            if self.crf_transitions is not None:
                loss = self.crf_negative_log_likelihood(logits, labels)
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return TokenClassifierOutput(loss=loss, logits=logits)

    def crf_scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(transitions[prev, next] with the IOB2-forbidden moves at -10,000, start[tag]).

        The start scores stay unconstrained: a training window may begin inside an entity, so its
        first tag may be `I-X`. Decoding runs over whole documents and forbids that there."""
        if self.crf_transitions is None or self.crf_start is None:
            raise ValueError("crf_scores: this model has no CRF (config.crf is false)")
        forbidden = torch.tensor(-1e4, dtype=self.crf_transitions.dtype)
        return torch.where(self.crf_allowed, self.crf_transitions, forbidden), self.crf_start

    def crf_negative_log_likelihood(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over tagged tokens of -log p(gold path). Positions labelled -100 ([CLS], [SEP],
        padding, continuation pieces) are taken out and the tagged ones closed up first."""
        tagged = labels != -100
        order = torch.sort((~tagged).to(torch.int8), dim=1, stable=True).indices
        lengths = tagged.sum(dim=1)
        width = int(lengths.max())
        order = order[:, :width]
        mask = torch.arange(width, device=labels.device)[None, :] < lengths[:, None]
        scores = emissions.gather(1, order.unsqueeze(-1).expand(-1, -1, emissions.size(-1)))
        gold = torch.where(mask, labels.gather(1, order), torch.zeros_like(order))
        transitions, start = self.crf_scores()

        rows = torch.arange(len(gold), device=gold.device)[:, None]
        steps = torch.arange(width, device=gold.device)[None, :]
        emitted = torch.where(mask, scores[rows, steps, gold], 0.0).sum(dim=1)
        moved = torch.where(mask[:, 1:], transitions[gold[:, :-1], gold[:, 1:]], 0.0).sum(dim=1)
        gold_score = start[gold[:, 0]] + emitted + moved

        # p(x) sums over every path: the product, in the (logsumexp, +) semiring, of one tags x tags matrix per
        # step after the first, taken as a tree in log2(width) rounds instead of a loop over the positions.
        # Steps past a window's length are the semiring's identity.
        step_matrices = transitions[None, None] + scores[:, 1:, None, :]
        identity = torch.full_like(transitions, -1e4).fill_diagonal_(0.0)
        step_matrices = torch.where(mask[:, 1:, None, None], step_matrices, identity)
        paths = _semiring_product(step_matrices, identity)
        first = start[None, :] + scores[:, 0]
        total = torch.logsumexp(first[:, :, None] + paths, dim=1)
        nonempty = lengths > 0
        log_partition = torch.logsumexp(total, dim=1)
        return ((log_partition - gold_score)[nonempty]).sum() / lengths.sum().clamp(min=1)


def _semiring_product(matrices: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """M_1 @ M_2 @ ... @ M_T in the (logsumexp, +) semiring for `matrices` (batch, T, n, n): (batch, n, n)."""
    while matrices.size(1) > 1:
        if matrices.size(1) % 2:
            matrices = torch.cat([matrices, identity.expand(len(matrices), 1, -1, -1)], dim=1)
        left, right = matrices[:, 0::2], matrices[:, 1::2]
        matrices = torch.logsumexp(left[..., :, :, None] + right[..., None, :, :], dim=-2)
    if matrices.size(1) == 0:
        return identity.expand(len(matrices), -1, -1)
    return matrices[:, 0]
