"""`policy-ner train` and `policy-ner pretrain`: a model version from a config."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import load_config
from ..labelstudio.exports import load_documents, resolve_annotation_files
from ..scoring import scores_table
from .common import command, log


def register(commands) -> None:
    train = command(
        commands,
        "train",
        "fine-tune a model from a YAML config",
        "policy-ner train configs/default.yaml --version 2026-12-v1",
    )
    train.add_argument("config", type=Path)
    train.add_argument("--version", help="model version name (default: timestamp-configname)")
    train.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    train.add_argument("--models-dir", type=Path, help="where models/<version>/ goes (default ROOT/models)")
    train.add_argument("--runs-dir", type=Path, help="where training/<version>/ goes (default ROOT/training)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run from its last epoch checkpoint (--version's, else this config's latest)",
    )
    train.set_defaults(handler=cmd_train)

    pretrain = command(
        commands,
        "pretrain",
        "masked-language-model pretraining of the config's encoder on the "
        "project's raw texts (and --corpus); fine-tune with model.base: OUTPUT",
        "policy-ner pretrain configs/default.yaml --corpus data/pretrain/corpus.jsonl --whole-word "
        "--steps 12000 --output encoders/policy-char-bert",
    )
    pretrain.add_argument("config", type=Path)
    pretrain.add_argument("--output", type=Path, required=True, help="checkpoint folder to write (must not exist)")
    pretrain.add_argument(
        "--corpus",
        type=Path,
        help="JSONL corpus to pretrain on besides the project's texts "
        "(make pretrain-corpus writes data/pretrain/corpus.jsonl)",
    )
    length = pretrain.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=0, help="optimizer steps (default: from --epochs)")
    length.add_argument("--epochs", type=float, default=20.0, help="passes over the windows (default 20)")
    pretrain.add_argument("--batch-size", type=int, default=32)
    pretrain.add_argument("--learning-rate", type=float, default=1e-3)
    pretrain.add_argument("--warmup-ratio", type=float, default=0.05)
    pretrain.add_argument("--mask-probability", type=float, default=0.15)
    pretrain.add_argument("--whole-word", action="store_true", help="mask whole jieba words, not single characters")
    pretrain.add_argument(
        "--corpus-min-char-count",
        type=int,
        default=5,
        help="corpus characters seen fewer times stay out of a scratch vocabulary (default 5)",
    )
    pretrain.add_argument("--run-dir", type=Path, help="checkpoint, log and tokenized data (default OUTPUT.run)")
    pretrain.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    pretrain.add_argument("--log-every", type=int, default=50, help="steps between log lines (default 50)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    pretrain.add_argument("--threads", type=int, help="torch threads (default: the config's train.threads)")
    pretrain.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    pretrain.set_defaults(handler=cmd_pretrain)


def cmd_train(args) -> int:
    from ..train.run import train  # torch and transformers load only for the commands that need them

    result = train(
        load_config(args.config),
        root=args.root,
        config_path=args.config,
        models_dir=args.models_dir,
        runs_dir=args.runs_dir,
        version=args.version,
        resume=args.resume,
        log=log,
    )
    if result is None:  # a multi-process run's other processes: the first one reports
        return 0
    if result.dev_metrics:
        print(f"\ndev metrics ({len(result.split.dev)} documents, strict entity level):")
        print(scores_table(result.dev_metrics))
    print(f"\nmodel: {result.model_dir}")
    return 0


def cmd_pretrain(args) -> int:
    from ..model.predictor import set_threads
    from ..train.pretrain import PretrainInterrupted, PretrainOptions, pretrain
    from ..train.run import vocabulary_texts

    config = load_config(args.config)
    options = PretrainOptions(
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio,
        mask_probability=args.mask_probability,
        whole_word=args.whole_word,
        corpus=str(args.corpus) if args.corpus else None,
        corpus_min_char_count=args.corpus_min_char_count,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
    )
    set_threads(config.train.threads if args.threads is None else args.threads)
    documents = load_documents(
        resolve_annotation_files(config.data.annotations, args.root), config.labels, config.data.edge_punctuation
    )
    texts = list(dict.fromkeys(vocabulary_texts(config, documents, args.root)[0]))
    try:
        pretrain(config, texts, args.output, options, run_dir=args.run_dir, resume=args.resume, log=log)
    except PretrainInterrupted as stopped:
        print(f"policy-ner pretrain: {stopped}", file=sys.stderr, flush=True)
        return 128 + stopped.signal_number
    return 0
