"""In-domain masked-language-model pretraining of the encoder on the project's raw policy texts.

`policy-ner pretrain CONFIG --output DIR` trains `BertForMaskedLM` on every text the config's data
section names (the annotated documents and `data.vocab_sources`), with the config's encoder size and
character vocabulary, and writes a Hugging Face checkpoint. Pretraining sees characters only; the
feature embeddings (features.py) are learned during fine-tuning. A config whose
`model.base` names DIR then fine-tunes from it. With a pretrained `model.base` in the config, the
pretraining continues from that checkpoint instead (domain-adaptive pretraining).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from ..config import Config
from ..model.encoding import IGNORE_INDEX, encode_text
from .dataset import TrainingExample
from ..files import atomic_directory, atomic_write_json
from ..model.network import is_scratch, load_base_tokenizer, scratch_encoder_settings
from .loop import EpochRecord, fit, seed_everything

PRETRAIN_CARD_FILE = "pretrain.json"


@dataclass(frozen=True)
class PretrainResult:
    output: Path
    seconds: float
    peak_memory_mb: float
    history: list[EpochRecord]


def language_model_examples(texts: Sequence[str], tokenizer) -> list[TrainingExample]:
    """Each text as an example whose labels are its own token ids (masked per batch later)."""
    examples = []
    for i, text in enumerate(texts):
        encoded = encode_text(text, tokenizer)
        examples.append(TrainingExample(f"text-{i}", encoded.input_ids, encoded.token_types, list(encoded.input_ids)))
    return examples


def masker(tokenizer, probability: float, seed: int):
    """BERT's masking: `probability` of the tagged tokens are predicted; of those 80% become
    [MASK], 10% a random token and 10% stay as they are."""
    generator = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def prepare(inputs: dict, labels: torch.Tensor) -> tuple[dict, torch.Tensor]:
        input_ids = inputs["input_ids"].clone()
        eligible = (labels != IGNORE_INDEX) & ~torch.isin(input_ids, special)
        chosen = eligible & (torch.rand(input_ids.shape, generator=generator) < probability)
        draw = torch.rand(input_ids.shape, generator=generator)
        input_ids[chosen & (draw < 0.8)] = tokenizer.mask_token_id
        random_tokens = chosen & (draw >= 0.8) & (draw < 0.9)
        input_ids[random_tokens] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[random_tokens]
        return {**inputs, "input_ids": input_ids}, torch.where(chosen, labels, IGNORE_INDEX)
    return prepare


def pretrain(config: Config, texts: Sequence[str], output: Path, *, epochs: int, learning_rate: float,
             mask_probability: float = 0.15, log=print) -> PretrainResult:
    seed_everything(config.train.seed)
    tokenizer = load_base_tokenizer(config, texts)
    if is_scratch(config):
        model = BertForMaskedLM(BertConfig(**scratch_encoder_settings(config, tokenizer, config.window.max_length)))
    else:
        model = AutoModelForMaskedLM.from_pretrained(config.model.base)
    examples = language_model_examples(texts, tokenizer)
    settings = config.model_copy(update={"train": config.train.model_copy(update={
        "epochs": epochs, "learning_rate": learning_rate, "augment_copies": 0})})
    log(f"pretraining on {len(texts)} texts ({sum(map(len, texts)):,} characters), "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    started = time.perf_counter()
    history = fit(model, examples, tokenizer, settings, log=log,
                  prepare_batch=masker(tokenizer, mask_probability, config.train.seed))
    seconds = round(time.perf_counter() - started, 1)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with atomic_directory(output) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        atomic_write_json(scratch / PRETRAIN_CARD_FILE, {
            "config_name": config.name, "base_model": config.model.base,
            "texts": len(texts),
            "characters": sum(map(len, texts)), "epochs": epochs, "learning_rate": learning_rate,
            "mask_probability": mask_probability, "seconds": seconds, "peak_memory_mb": peak,
            "losses": [r.loss for r in history]})
    log(f"wrote {output} ({seconds}s, peak {peak} MB); fine-tune from it with model.base: {output}")
    return PretrainResult(Path(output), seconds, peak, history)
