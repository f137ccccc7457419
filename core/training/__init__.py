"""Training on torch/transformers/peft. Imported only by the trainer process and benches,
never by `core` itself, so the CLI and dashboard start without loading torch."""
