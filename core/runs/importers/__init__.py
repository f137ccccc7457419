"""Importers for training logs written by other tools, one module per format.

`registry.py` lists them; each format module holds an `Importer` (see `base.py`): a name
(the imported run's `source`), `detect` (how sure it is that a log is its format, from the
content; the file name is only a hint) and `read` (the log as ImportedLog). Adding a format
is adding one module and its line in the registry. `events.py` holds what every format
shares: turning metric rows into our train/eval events.

Decisions a reader of the imported events should know:

* Eval rows: `val_token_accuracy` comes only from metrics that are token accuracies by
  definition (TRL's `eval_mean_token_accuracy`, OpenAI's `valid_mean_token_accuracy` and the
  legacy `validation_token_accuracy`). A bare `eval_accuracy` is whatever the user's
  `compute_metrics` returned (a classifier's accuracy in most Trainer scripts), so it stays in
  `extra` under its own name. Eval events carry the row's `epoch` in `extra`.
* `tokens` is the cumulative token count the source reports (`num_input_tokens_seen`, TRL's
  `num_tokens`, LLaMA-Factory's `total_tokens`, OpenAI's `elapsed_tokens`). A cumulative count
  of 0 after training steps means the counter was off, so it (and a throughput of 0 computed
  from it) becomes None rather than a false zero.
* A row logged twice for the same step and kind (a resumed run) keeps its last occurrence.
* `completed`: True when the log says the run finished, False when it states a total and
  ends before it, None when nothing in the log says either way. Each format module says
  what it reads as "finished".
"""
