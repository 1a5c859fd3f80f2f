"""`policy-ner train` and `policy-ner pretrain`: a model version from a config."""

from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..labelstudio.exports import load_documents, resolve_annotation_files
from ..scoring import scores_table
from .common import command, log


def register(commands) -> None:
    train = command(commands, "train", "fine-tune a model from a YAML config",
                    "policy-ner train configs/default.yaml --version 2026-12-v1")
    train.add_argument("config", type=Path)
    train.add_argument("--version", help="model version name (default: timestamp-configname)")
    train.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    train.add_argument("--models-dir", type=Path, help="where models/<version>/ goes (default ROOT/models)")
    train.add_argument("--runs-dir", type=Path, help="where training/<version>/ goes (default ROOT/training)")
    train.set_defaults(handler=cmd_train)

    pretrain = command(commands, "pretrain", "masked-language-model pretraining of the config's encoder on the "
                       "project's raw texts; fine-tune with model.base: OUTPUT",
                       "policy-ner pretrain configs/default.yaml --output encoders/policy-char-bert")
    pretrain.add_argument("config", type=Path)
    pretrain.add_argument("--output", type=Path, required=True, help="checkpoint folder to write (must not exist)")
    pretrain.add_argument("--epochs", type=int, default=20)
    pretrain.add_argument("--learning-rate", type=float, default=1e-3)
    pretrain.add_argument("--mask-probability", type=float, default=0.15)
    pretrain.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    pretrain.set_defaults(handler=cmd_pretrain)


def cmd_train(args) -> int:
    from ..train.run import train  # torch and transformers load only for the commands that need them

    result = train(load_config(args.config), root=args.root, config_path=args.config, models_dir=args.models_dir,
                   runs_dir=args.runs_dir, version=args.version, log=log)
    if result.dev_metrics:
        print(f"\ndev metrics ({len(result.split.dev)} documents, strict entity level):")
        print(scores_table(result.dev_metrics))
    print(f"\nmodel: {result.model_dir}")
    return 0


def cmd_pretrain(args) -> int:
    from ..model.predictor import set_threads
    from ..train.pretrain import pretrain
    from ..train.run import vocabulary_texts

    config = load_config(args.config)
    if args.output.exists():
        raise FileExistsError(f"{args.output} already exists; choose another --output")
    set_threads(config.train.threads)
    documents = load_documents(resolve_annotation_files(config.data.annotations, args.root), config.labels)
    texts = vocabulary_texts(config, documents, args.root)[0]
    pretrain(config, list(dict.fromkeys(texts)), args.output, epochs=args.epochs, learning_rate=args.learning_rate,
             mask_probability=args.mask_probability, log=log)
    return 0
