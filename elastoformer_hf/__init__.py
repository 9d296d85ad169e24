"""elastoformer-hf: one pre-trained vision model becomes a family of nested, elastic descendant networks."""

__version__ = "0.1.0"
