"""Data checks: each finds one kind of problem in a chat dataset."""
