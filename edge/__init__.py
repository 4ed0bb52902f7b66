"""The I/O edge of the stream side: Kafka client settings (kafka.py), the state writer and the reader
of compacted topics up to a sentinel (store.py), the Faust app class (transport.py), and the loop
that runs a periodic job in the background (background.py). `stream/` itself stays pure."""
