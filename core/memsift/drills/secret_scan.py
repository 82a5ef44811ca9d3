"""Finding a secret wherever a reader can look: text (:func:`find_secret`, in its plain form
and obvious encodings, :func:`secret_forms`), log records of every logger at DEBUG
(:func:`capture_logs`), what an exception lets a reader reach (:func:`exception_leaks`), and
what an object prints (:func:`object_leaks`, :func:`memory_objects`). The instruments of the
secrets drill (:mod:`memsift.drills.secrets`); a test can use them alone::

    with capture_logs() as logs:
        ...
    assert not logs.leaks(api_key)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

#: Loggers of the SDKs and HTTP stacks the providers use; set to DEBUG with everything else.
SDK_LOGGERS = (
    "openai",
    "openai._base_client",
    "anthropic",
    "anthropic._base_client",
    "cohere",
    "zeroentropy",
    "zeroentropy._base_client",
    "huggingface_hub",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "httpcore.connection",
    "httpcore.http11",
    "h11",
    "h2",
    "hpack",
    "urllib3",
    "urllib3.connectionpool",
    "requests",
    "asyncio",
    "py.warnings",
    "memsift",
)
#: The packages imported before the loggers are swept, so that a level they set at import
#: time is overridden too.
SDK_PACKAGES = ("openai", "anthropic", "cohere", "zeroentropy", "httpx", "httpcore", "urllib3")

_MIN_FORM = 8


# --------------------------------------------------------------------------- finding a secret


def _base64_cores(raw: bytes, encode: Callable[[bytes], bytes]) -> list[str]:
    """The part of ``encode(prefix + raw + suffix)`` that depends on ``raw`` alone, for each
    of the three byte offsets ``raw`` can have in the encoded stream."""
    cores = []
    for shift in range(3):
        text = encode(b"\0" * shift + raw).decode("ascii")
        start = (shift * 8 + 5) // 6
        end = (shift + len(raw)) * 8 // 6
        cores.append(text[start:end])
    return cores


def secret_forms(secret: str) -> dict[str, str]:
    """``secret`` and its obvious encodings, by name: plain, lower- and upper-cased,
    URL-quoted (``quote`` and ``quote_plus``), JSON- and repr-escaped, hex, and base64
    (standard and URL-safe) at each byte offset, so it is found inside a longer encoded value
    (``Basic user:key``)."""
    raw = secret.encode("utf-8")
    forms: dict[str, str] = {
        "plain": secret,
        "lower-cased": secret.lower(),
        "upper-cased": secret.upper(),
        "url-quoted": urllib.parse.quote(secret, safe=""),
        "url-quoted-plus": urllib.parse.quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "repr-escaped": repr(secret)[1:-1],
        "hex": binascii.hexlify(raw).decode("ascii"),
    }
    for name, encode in (("base64", base64.b64encode), ("base64-url", base64.urlsafe_b64encode)):
        for shift, core in enumerate(_base64_cores(raw, encode)):
            forms[f"{name}@{shift}"] = core
    out: dict[str, str] = {}
    for name, form in forms.items():
        if len(form) >= min(_MIN_FORM, len(secret)) and form not in out.values():
            out[name] = form
    return out


#: How many characters of a secret in a row count as showing it (an excerpt cut inside it).
PART = 12


def find_secret(text: str, secret: str) -> str | None:
    """The name of the first form of ``secret`` (see :func:`secret_forms`) in ``text``, or of
    a part of it: :data:`PART` characters in a row."""
    if not secret:
        return None
    if f"Bearer {secret}" in text:
        return "bearer header"
    for name, form in secret_forms(secret).items():
        if form in text:
            return name
    if len(secret) > PART:
        for start in range(len(secret) - PART + 1):
            if secret[start : start + PART] in text:
                return f"a part of it ({PART}+ characters)"
    return None


# --------------------------------------------------------------------------- logs


class LogCapture(logging.Handler):
    """A handler that keeps every record it sees, and their text (:meth:`texts`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[tuple[logging.LogRecord, str]]:
        """Each record with all of its text: the formatted line, its exception and stack
        text, and the repr of its arguments and extra fields (what a JSON formatter shows)."""
        for record in self.records:
            parts = [_safe(self.format, record), _safe(repr, record.args)]
            parts.extend(
                f"{k}={_safe(repr, v)}" for k, v in vars(record).items() if k not in _RECORD_PLAIN
            )
            yield record, "\n".join(parts)

    def leaks(self, secret: str) -> list[str]:
        """One line per record that holds ``secret`` (its logger and the form found)."""
        found = []
        for record, text in self.texts():
            form = find_secret(text, secret)
            if form is None and record.exc_info and record.exc_info[1] is not None:
                where = exception_leaks(record.exc_info[1], secret)
                form = where[0] if where else None
            if form is not None:
                found.append(f"logger {record.name!r} ({record.levelname}): {form}")
        return found


#: Record attributes that are plain bookkeeping (the rest may be extra fields).
_RECORD_PLAIN = frozenset(
    {"name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName"}
    | {"created", "msecs", "relativeCreated", "thread", "threadName", "process"}
    | {"processName", "taskName", "exc_text", "exc_info", "stack_info", "msg", "args"}
)


def _safe(make: Callable[..., str], *args: Any) -> str:
    """``make(*args)``; a repr that raises shows nothing, and hides nothing."""
    try:
        return make(*args)
    except Exception as exc:  # a repr that raises shows nothing, and hides nothing
        return f"<unprintable: {type(exc).__name__}>"


@contextlib.contextmanager
def capture_logs(names: Iterable[str] = SDK_LOGGERS) -> Iterator[LogCapture]:
    """Every log record of every logger, at DEBUG, while the block runs.

    The SDK packages of :data:`SDK_PACKAGES` are imported first; then the root and every
    known logger (those of ``names`` created if need be) are set to DEBUG, enabled, and made
    to propagate, warnings are routed to logging, and the handler is put on the root and on
    every logger that has handlers of its own (an SDK's own debug handler). All of it is
    restored on exit.
    """
    for package in SDK_PACKAGES:
        with contextlib.suppress(ImportError):
            __import__(package)
    capture = LogCapture()
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in names]
    known = [
        v for v in list(logging.Logger.manager.loggerDict.values()) if isinstance(v, logging.Logger)
    ]
    everyone = [root, *{id(lg): lg for lg in [*loggers, *known]}.values()]
    saved = [(lg, lg.level, lg.propagate, lg.disabled) for lg in everyone]
    extra = [lg for lg in everyone if lg is not root and lg.handlers]
    disable = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    # warnings already routed to logging stay so afterwards
    routed = getattr(logging, "_warnings_showwarning", None) is not None
    logging.captureWarnings(True)
    for lg in everyone:
        lg.setLevel(logging.DEBUG)
        lg.propagate = True
        lg.disabled = False
    root.addHandler(capture)
    for lg in extra:
        lg.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for lg in extra:
            lg.removeHandler(capture)
        for lg, level, propagate, disabled in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled
        if not routed:
            logging.captureWarnings(False)
        logging.disable(disable)
        _dedupe(capture)


def _dedupe(capture: LogCapture) -> None:
    """A record seen by the root and by an SDK's own logger is kept once."""
    seen: set[int] = set()
    kept = []
    for record in capture.records:
        if id(record) not in seen:
            seen.add(id(record))
            kept.append(record)
    capture.records = kept


# --------------------------------------------------------------------------- exceptions


def reachable(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it: causes, contexts, the members of an
    exception group, and the exceptions held by its frames (see
    :func:`memsift.testing.secrets.reachable_exceptions`), recursively."""
    from memsift.testing.secrets import reachable_exceptions

    seen: dict[int, BaseException] = {}
    stack = [error]
    while stack:
        for found in reachable_exceptions(stack.pop()):
            if id(found) not in seen:
                seen[id(found)] = found
                stack.extend(getattr(found, "exceptions", ()) or ())
    return list(seen.values())


def _frame_locals(error: BaseException) -> Iterator[tuple[str, str, str]]:
    """(function, variable, repr) of the locals of each frame ``error`` passed through,
    after the first (the caller's own frame, which holds what the caller gave)."""
    tb = error.__traceback__
    tb = tb.tb_next if tb is not None else None
    while tb is not None:
        code = tb.tb_frame.f_code
        for name, value in list(tb.tb_frame.f_locals.items()):
            yield code.co_name, name, _safe(repr, value)
        tb = tb.tb_next


def exception_leaks(error: BaseException, secret: str) -> list[str]:
    """Where ``secret`` shows in what ``error`` lets a reader reach (see the module
    docstring); empty when nowhere."""
    found: list[str] = []
    for exc in reachable(error):
        name = type(exc).__name__
        notes = getattr(exc, "__notes__", None) or []
        for what, text in (
            ("str", _safe(str, exc)),
            ("repr", _safe(repr, exc)),
            ("args", _safe(repr, exc.args)),
            ("notes", repr(notes)),
        ):
            form = find_secret(text, secret)
            if form is not None:
                found.append(f"{what} of a {name} in the chain: {form}")
        for function, variable, text in _frame_locals(exc):
            form = find_secret(text, secret)
            if form is not None:
                found.append(f"local {variable!r} of {function}() in a {name}'s frames: {form}")
    formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    form = find_secret(formatted, secret)
    if form is not None:
        found.append(f"the formatted traceback: {form}")
    return found


# --------------------------------------------------------------------------- objects


def object_texts(obj: object) -> dict[str, str]:
    """What a reader can print of ``obj``: ``repr``, ``str``, and for a pydantic model its
    ``model_dump()`` (repr), JSON dump, and ``to_dict()`` where it has one."""
    out = {"repr": _safe(repr, obj), "str": _safe(str, obj)}
    if isinstance(obj, BaseModel):
        out["model_dump()"] = _safe(lambda: repr(obj.model_dump()))
        out["model_dump(mode='json')"] = _safe(lambda: json.dumps(obj.model_dump(mode="json")))
        out["model_dump_json()"] = _safe(obj.model_dump_json)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        out["to_dict()"] = _safe(lambda: json.dumps(to_dict(), default=str))
    return out


def memory_objects(memory: Any) -> dict[str, object]:
    """The Memory, its config, its providers and theirs (one level of nesting: an LLM
    reranker's llm), and each provider's config, by a readable path."""
    out: dict[str, object] = {"Memory": memory, "Memory.config": memory.config}
    for kind in ("vector_store", "embedder", "llm", "reranker"):
        section = memory.config.section(kind)
        if section is not None:
            out[f"MemoryConfig.{kind}"] = section
            out[f"MemoryConfig.{kind}.config"] = section.config
    stage = getattr(memory, "reranker_stage", None)
    if stage is not None:
        out["Memory.reranker_stage"] = stage
    for attr in ("embedder", "vector_store", "llm", "reranker"):
        provider = getattr(memory, attr, None)
        if provider is None:
            continue
        out[f"Memory.{attr}"] = provider
        out[f"Memory.{attr}.config"] = getattr(provider, "config", None)
        for name, value in list(vars(provider).items()):
            inner = getattr(value, "config", None)
            if isinstance(inner, BaseModel) and value is not provider:
                out[f"Memory.{attr}.{name}"] = value
                out[f"Memory.{attr}.{name}.config"] = inner
    return {k: v for k, v in out.items() if v is not None}


def object_leaks(objects: Mapping[str, object], secret: str) -> list[str]:
    """One line per object text (see :func:`object_texts`) that holds ``secret``."""
    found = []
    for path, obj in objects.items():
        for what, text in object_texts(obj).items():
            form = find_secret(text, secret)
            if form is not None:
                found.append(f"{what} of {path}: {form}")
    return found


__all__ = [
    "PART",
    "SDK_LOGGERS",
    "SDK_PACKAGES",
    "LogCapture",
    "capture_logs",
    "exception_leaks",
    "find_secret",
    "memory_objects",
    "object_leaks",
    "object_texts",
    "reachable",
    "secret_forms",
]
