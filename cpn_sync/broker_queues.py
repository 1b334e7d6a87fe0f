"""How many messages wait in a broker queue, the same way on Redis and on RabbitMQ.

A passive `queue_declare` answers the count without creating anything. On RabbitMQ it is the
queue's ready messages; on Redis kombu sums the queue's lists, one per priority step (`cpn`,
`cpn\\x06\\x163`, ...), which a plain `LLEN cpn` would miss. Either way the messages a worker has
taken and not yet acknowledged are not counted: they are being worked on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from kombu import Connection
from kombu.exceptions import ChannelError


def waiting_messages(connection: Connection, queue: str) -> int:
    """Messages waiting in `queue`; 0 for a queue that was never declared.

    Each queue gets a channel of its own: RabbitMQ closes the channel on which a passive
    declare of a missing queue failed.
    """
    channel: Any = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:
        return 0
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def queue_lengths(connection: Connection, queues: Iterable[str]) -> dict[str, int]:
    return {queue: waiting_messages(connection, queue) for queue in queues}
