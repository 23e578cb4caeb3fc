"""The pieces of a training run, each testable on its own: the fit (``fit``), DVCLive logging
(``live``), the model and its weights (``model``), crash-safe checkpoints (``checkpoints``),
the run folder's files (``outputs``) and the hand-over between processes (``processes``).
The train stage (kerapipe/steps/train.py) puts them together."""
