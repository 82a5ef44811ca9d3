"""Credentials out of the HTTP libraries' and SDKs' own log records.

httpx logs every request's URL at INFO (``HTTP Request: POST https://...``) and the SDKs built
on it log request options and the errors they handle at DEBUG; a URL that carries credentials
(``https://user:secret@``, as a TEI endpoint behind a proxy with basic auth takes them) puts
them in those records. :func:`install_log_redaction` adds a filter to those loggers that
masks the userinfo of every URL in a record's message and exception text
(``https://***@host/...``), and each secret a provider registered with it. A hosted provider
calls it when it is built (the hosted kit's bases do); records of a logger that is not
enabled are never made, so the filter costs nothing while logging is off.
"""

from __future__ import annotations

import logging
import re
import threading

from pydantic import SecretStr

#: The loggers that write request URLs or options: httpx (and its successor httpx2), the
#: SDKs' base clients, and the other HTTP stacks the providers may use.
REDACTED_LOGGERS = (
    "httpx",
    "httpx2",
    "openai",
    "openai._base_client",
    "anthropic",
    "anthropic._base_client",
    "zeroentropy",
    "zeroentropy._base_client",
    "cohere",
    "huggingface_hub",
    "urllib3.connectionpool",
)

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")
_MASK = "***"
#: Most secrets kept (a process builds few providers; the oldest are dropped first).
MAX_SECRETS = 64


def mask_credentials(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with the userinfo of each URL masked, and each of ``secrets`` replaced."""
    text = _URL_USERINFO.sub(rf"\g<scheme>{_MASK}@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


class CredentialFilter(logging.Filter):
    """Masks URL credentials and the registered secrets in the message of every record."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}

    def register(self, secret: str | SecretStr | None) -> None:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not value:
            return
        with self._lock:
            self._secrets.pop(value, None)
            self._secrets[value] = None
            while len(self._secrets) > MAX_SECRETS:
                del self._secrets[next(iter(self._secrets))]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is left as it is
            return True
        with self._lock:
            secrets = tuple(self._secrets)
        masked = mask_credentials(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # an SDK logs the exception it handles (an httpx error names the URL): its text
            # is kept, masked, and the exception object, which holds the URL, is dropped
            text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            masked = mask_credentials(text, secrets)
            if masked != text:
                record.exc_text, record.exc_info = masked, None
        if record.stack_info:
            record.stack_info = mask_credentials(record.stack_info, secrets)
        return True


_FORMATTER = logging.Formatter()
_filter = CredentialFilter()
_installed: set[str] = set()
_install_lock = threading.Lock()


def install_log_redaction(*secrets: str | SecretStr | None) -> CredentialFilter:
    """Put the filter on every logger of :data:`REDACTED_LOGGERS` (once), and register
    ``secrets`` with it; returns the filter."""
    for secret in secrets:
        _filter.register(secret)
    with _install_lock:
        for name in REDACTED_LOGGERS:
            if name not in _installed:
                logging.getLogger(name).addFilter(_filter)
                _installed.add(name)
    return _filter


__all__ = [
    "REDACTED_LOGGERS",
    "CredentialFilter",
    "install_log_redaction",
    "mask_credentials",
]
