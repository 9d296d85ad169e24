"""The elastic family as one artifact: shared weights stored once, every level a prefix view, switched at run time.

:class:`ElasticFamily` saves to / loads from ``family_config.json`` + ``family.safetensors`` (or a Hub repo), runs
any level (the current one on contiguous copies of the views a forward pass would copy, made once by
``set_level``) and picks a level for a budget. Loading needs none of the engine (no
torch-pruning): building a family from a run folder is :func:`elastoformer_hf.nesting.build_family`.
"""

from .family import ElasticFamily
from .modules import PrefixLinear
from .storage import CONFIG_FILE, WEIGHTS_FILE

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "ElasticFamily", "PrefixLinear"]
