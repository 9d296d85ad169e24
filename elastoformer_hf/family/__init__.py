"""The elastic family as one artifact: shared weights stored once, every level a prefix view, switched at run time.

:class:`ElasticFamily` builds from a finished run folder, saves to / loads from ``family_config.json`` +
``family.safetensors`` (or a Hub repo), runs any level without copying weights and picks a level for a budget.
"""

from .family import ElasticFamily
from .modules import PrefixLinear
from .storage import CONFIG_FILE, WEIGHTS_FILE

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "ElasticFamily", "PrefixLinear"]
