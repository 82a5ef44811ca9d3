"""The local mode's runtime (:class:`memsift.kit.local.LocalRuntime`): the torch import
with this package's install hint, the device, and the process-wide model cache (tokenizer
and model per key). Nothing here imports torch: importing the package stays cheap, and the
remote mode never needs it.
"""

from __future__ import annotations

from memsift.kit.local import LocalRuntime, install_hint

INSTALL_HINT = install_hint('"memsift-huggingface[local]"')
RUNTIME = LocalRuntime(f"the local mode of the huggingface reranker needs torch: {INSTALL_HINT}")
MODEL_CACHE = RUNTIME.cache
