"""Calling the observer hooks: plugins that watch what memsift does (to export metrics).

``memsift_search_completed`` is called after every search with a read-only
:class:`~memsift.search.SearchEvent`. Every implementation is called inline; one that raises
is logged and never fails the search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from memsift.plugins import get_plugin_manager
from memsift.search import SearchEvent

log = logging.getLogger("memsift")


def notify_search(make_event: Callable[[], SearchEvent]) -> None:
    """Hand a search's event to every ``memsift_search_completed`` implementation.

    ``make_event`` builds it, and is called only when some plugin observes searches.
    """
    observers = get_plugin_manager().hook.memsift_search_completed.get_hookimpls()
    if not observers:
        return
    event = make_event()
    for impl in observers:
        try:
            impl.function(event=event)
        except Exception:
            log.exception("search observer %r failed", impl.plugin_name)
