"""policy-ner: entities in Chinese policy documents (policy targets, organizations, subsidy amounts).

The stages, each a module: `annotations` (Label Studio exports -> validated documents), `dataset`
(IOB2 windows), `training`, `inference` (`Predictor`), `evaluation`, `reporting`, `labelstudio`
(Label Studio formats), `labelstudio_sync` (push to and pull from a live server), `labelstudio_server`
(a local server), `corpus` (raw data manifest) and `cli`. Heavy modules (torch, transformers) load on first use.
"""

__version__ = "0.1.0"
