"""Benchmarks (not tests): each prints its figures as a final JSON line."""
