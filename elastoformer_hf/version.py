"""The installed version of elastoformer-hf (recorded in plans, family configs and device records)."""

__version__ = "0.1.0"
