"""Test helpers for elastoformer-hf (no network needed): see :mod:`elastoformer_hf.testing.loopback_hub`."""
