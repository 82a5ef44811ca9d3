"""What the tests share besides fixtures: the fake API's key."""

from __future__ import annotations

#: The key the providers are given, and the fake API expects (and quotes in a 401).
API_KEY = "sk-test-fake-0123456789abcdefXYZ"
