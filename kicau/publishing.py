"""Publishing events to Kafka: one awaited, acknowledged send per accepted write."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from kicau.events import Event, encode_event, event_key


async def publish(producer: AIOKafkaProducer, topic: str, event: Event) -> None:
    """Returns only once every in-sync replica has the event (acks=all); raises otherwise."""
    await producer.send_and_wait(topic, encode_event(event), key=event_key(event))


async def enqueue(producer: AIOKafkaProducer, topic: str, event: Event) -> None:
    """Hand an event to the producer without waiting for the broker: it goes out after every event of its key
    handed over before it (the producer is idempotent and keeps a partition's order through its retries)."""
    await producer.send(topic, encode_event(event), key=event_key(event))
