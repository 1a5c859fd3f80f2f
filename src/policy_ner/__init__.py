"""policy-ner: entities in Chinese policy documents (policy targets, organizations, subsidy amounts).

The data flows one way, and the subpackages are its stages, each importing only from those below it
(`pyproject.toml`'s import-linter contract, checked by the tests):

- `cli`: the `policy-ner` command, a few lines per command over the library;
- `evaluate`: scoring reports, model comparison, cross-validation, baselines;
- `predict` (batch prediction: inputs, outputs) and `train` (training windows, the loop, a run,
  pretraining, augmentation);
- `model`: window encoding, the network, runtimes (torch, ONNX), export, the `Predictor`, the registry;
- `features` (jieba, LAC and money channels, Viterbi decoding) and `labelstudio` (exports in,
  formats, a live server's round trip, a local server);
- at the bottom, torch-free: `types` (`Document`, `Span`, `Entity`), `tags` (IOB2), `config`,
  `scoring` (seqeval), `markdown`, `files`, `corpus`, `cpu`.
"""

__version__ = "0.1.0"
