"""moto_compat: the two places where moto 5.2.1's ECS differs from ECS in a way that breaks the
SDKs or changes what a test shows, corrected on the way through aws_proxy.py (--moto-compat).

* A task's containers come back with ``cpu``, ``memory`` and ``memoryReservation`` as JSON
  numbers; ECS sends strings (the ``Container`` shape in ECS's model), and the Rust SDK refuses
  numbers ("expected string"), so DescribeTasks and RunTask answers could not be parsed at all.
  They are turned into strings.
* RunTask ignores ``clientToken``; ECS honours it ("Ensuring idempotency" in the ECS API
  reference: a repeated request with a token already answered gets the first answer and starts
  nothing). Without this, a RunTask whose answer is lost starts a second task in moto where ECS
  would not. The first successful answer (HTTP 200) per (access key, token) is kept and
  replayed, one that started nothing (``tasks`` empty, ``failures``) included: ECS documents the
  replay for requests that succeeded and is silent on those, and replaying them is the case a
  caller retrying with the same token could not get past.

Python 3.11 standard library only.
"""

from __future__ import annotations

import json
import threading

CONTAINER_NUMBERS = ("cpu", "memory", "memoryReservation")


def stringify_container_numbers(doc) -> bool:
    """Turn the numeric fields of every ``containers`` item into strings, in place; True if any."""
    changed = False
    if isinstance(doc, dict):
        for key, child in doc.items():
            if key == "containers" and isinstance(child, list):
                for c in child:
                    if isinstance(c, dict):
                        for f in CONTAINER_NUMBERS:
                            v = c.get(f)
                            if isinstance(v, (int, float)) and not isinstance(v, bool):
                                c[f] = str(v)
                                changed = True
            changed = stringify_container_numbers(child) or changed
    elif isinstance(doc, list):
        for child in doc:
            changed = stringify_container_numbers(child) or changed
    return changed


class MotoCompat:
    """Thread-safe; one per proxy."""

    def __init__(self):
        self._lock = threading.Lock()
        self._run_task_answers: dict[tuple[str, str], tuple[int, list, bytes]] = {}

    @staticmethod
    def run_task_key(account: str, body: bytes) -> tuple[str, str] | None:
        """(caller, clientToken) of a RunTask request, or None without a token."""
        try:
            token = json.loads(body or b"{}").get("clientToken")
        except (ValueError, AttributeError):
            return None
        return (account, token) if isinstance(token, str) and token else None

    def replay(self, key: tuple[str, str] | None) -> tuple[int, list, bytes] | None:
        if key is None:
            return None
        with self._lock:
            return self._run_task_answers.get(key)

    def remember(self, key: tuple[str, str] | None, status: int, headers: list, body: bytes) -> None:
        if key is not None and status == 200:
            with self._lock:
                self._run_task_answers.setdefault(key, (status, headers, body))

    @staticmethod
    def fix_answer(body: bytes) -> bytes:
        """An ECS JSON answer with its task containers' numbers as strings (unchanged otherwise)."""
        if b'"containers"' not in body:
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        return json.dumps(doc).encode() if stringify_container_numbers(doc) else body
