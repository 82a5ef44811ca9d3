"""What both providers share (:class:`memsift.kit.local.LocalRuntime`): the torch import
with this package's install hint, the device, and the process-wide model cache
(cross-encoders and sentence embedders). Nothing here imports torch: importing the package
stays cheap, and torch is imported the first time a provider is built.
"""

from __future__ import annotations

from memsift.kit.local import LocalRuntime, install_hint

INSTALL_HINT = install_hint("memsift-sentence-transformers")
RUNTIME = LocalRuntime(f"the sentence_transformer providers need torch: {INSTALL_HINT}")
MODEL_CACHE = RUNTIME.cache
