"""Create the Kafka topics Kicau's services expect, idempotently."""

from __future__ import annotations

import asyncio
from typing import Any

from stack.config import HOST, KAFKA_TOPICS, StackError, kafka_partitions, ports

TOPIC_ALREADY_EXISTS = 36


async def _ensure_topics(bootstrap: str, names: tuple[str, ...], partitions: int) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="kicau-stack", request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return []
        response: Any = await admin.create_topics(
            [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in missing]
        )
        for entry in response.to_object().get("topic_errors", []):
            code = entry.get("error_code", 0)
            if code not in (0, TOPIC_ALREADY_EXISTS):
                message = entry.get("error_message") or ""
                raise StackError(f"creating topic {entry.get('topic')} failed: error {code} {message}".rstrip(),
                                 "see .stack/kafka/kafka.log")  # fmt: skip
        return missing
    finally:
        await admin.close()


def ensure_topics() -> list[str]:
    """Returns the topics that had to be created."""
    bootstrap = f"{HOST}:{ports().kafka}"
    try:
        return asyncio.run(_ensure_topics(bootstrap, KAFKA_TOPICS, kafka_partitions()))
    except StackError:
        raise
    except Exception as exc:
        raise StackError(f"could not create Kafka topics on {bootstrap}: {type(exc).__name__}: {exc}",
                         "check `python -m stack logs kafka`") from exc  # fmt: skip
