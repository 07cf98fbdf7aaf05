"""Where records that can never be delivered go: SQS in Lambda, a JSON-lines file locally."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DeadLetterSink", "FileDeadLetters", "SqsDeadLetters"]

logger = logging.getLogger("skewgate.forward")


class DeadLetterSink(Protocol):
    """Where permanently failed records go. ``send`` returns the messages it could not store."""

    def describe(self) -> str: ...

    def send(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


class SqsDeadLetters:
    """The forward function's SQS dead-letter queue (``FORWARD_DLQ_URL``)."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sqs")
        self.queue_url = queue_url
        self.client = client

    def describe(self) -> str:
        return f"SQS {self.queue_url}"

    def send(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        unsent: list[dict[str, Any]] = []
        for start in range(0, len(messages), 10):
            chunk = list(messages[start : start + 10])
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(m, separators=(",", ":"))}
                for i, m in enumerate(chunk)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception:
                logger.exception("forward: cannot write to the dead-letter queue")
                unsent.extend(chunk)
                continue
            unsent.extend(chunk[int(f["Id"])] for f in response.get("Failed", []))
        return unsent


class FileDeadLetters:
    """The local runner's dead-letter queue: one JSON object per line (``FORWARD_DLQ_FILE``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"file {self.path}"

    def send(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    for message in messages:
                        out.write(json.dumps(message, separators=(",", ":")) + "\n")
        except OSError:
            logger.exception("forward: cannot write %s", self.path)
            return list(messages)
        return []


