"""Faust's aiokafka transport with a configurable fetch wait.

Faust hard-codes `fetch_max_wait_ms=1500` for its consumer. A broker holds an idle fetch that long
unless it answers as soon as data arrives; Apache Kafka does, the embedded broker does not
(measured: produce -> consume 750-1500 ms at 1500 ms, <= 105 ms at 100 ms). A short wait costs
Kafka only a few empty fetches per second, so it is simply a setting here (SQM_FETCH_MAX_WAIT_MS).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


def app_class(fetch_max_wait_ms: int) -> type[faust.App]:
    class _Thread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
            return consumer

    class _Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return _Thread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(driver.Transport):
        Consumer = _Consumer

    class App(faust.App):
        def _new_transport(self) -> Any:
            return _Transport(self.conf.broker_consumer, self, loop=self.loop)

    return App
