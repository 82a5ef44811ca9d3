"""The README scenario of
:class:`memsift.testing.hosted_pipeline.HostedRerankerPipelineConformance`: the README's
example, copied as it is, runs against the fake API and reranks. A mixin of the pipeline
suite, which provides its fixtures.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memsift.memory import Memory
from memsift.testing.fake_rerank_api import FakeRerankAPI

__all__ = ["ReadmeScenario"]


class ReadmeScenario:
    """Class attributes: ``readme`` (None: skipped), the README whose first Python example
    with ``Memory.from_config`` must work; ``readme_env``, the environment variables the
    example reads, each set to the fake's ``"api_key"`` or ``"base_url"``."""

    readme: ClassVar[Path | None] = None
    readme_env: ClassVar[Mapping[str, str]] = {}

    def test_the_readme_example_reranks(
        self, _api: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The README's example, copied as it is, against the fake (key and URL from the
        environment): it reranks and prints the hits; its searches again are cache hits
        when the reranker's score cache is on, with no request."""
        if self.readme is None:
            pytest.skip("set readme to the README whose example must work")
        text = Path(self.readme).read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
        example = next((b for b in blocks if "Memory.from_config" in b), None)
        assert example is not None, f"{self.readme} has no Python example with Memory.from_config"
        values = {"api_key": _api.api_key, "base_url": _api.base_url}
        for name, what in self.readme_env.items():
            monkeypatch.setenv(name, values[what])
        searches: list[tuple[Memory, tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []
        search = Memory.search

        def recorded(memory: Memory, *args: Any, **kwargs: Any) -> dict[str, Any]:
            out: dict[str, Any] = search(memory, *args, **kwargs)
            searches.append((memory, args, kwargs, out))
            return out

        monkeypatch.setattr(Memory, "search", recorded)
        namespace: dict[str, Any] = {}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(example, str(self.readme), "exec"), namespace)
        try:
            assert searches, "the example makes no search"
            auth = f"{_api.auth_scheme}{_api.api_key}"
            assert _api.requests and all(
                r.headers.get(_api.auth_header) == auth for r in _api.requests
            )
            for *_, out in searches:
                assert out["rerank"]["applied"] is True, out["rerank"]
                assert out["rerank"]["candidates"] == len(out["results"])
                for hit in out["results"]:
                    assert hit["memory"] in printed.getvalue(), "the example prints its hits"
            sent = len(_api.requests)
            memory, args, kwargs, out = searches[-1]
            reranker = memory.reranker
            if reranker is not None and reranker.config.cache_size:
                again = search(memory, *args, **kwargs)
                assert again["rerank"]["cache_hits"] == out["rerank"]["candidates"]
                assert len(_api.requests) == sent, "a cached search made a request"
        finally:
            for value in list(namespace.values()):
                if isinstance(value, Memory):
                    value.close()
