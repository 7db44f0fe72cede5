"""LogWarden's Fluent Bit output path: a Forward-protocol receiver (``logwarden fluent-receiver``) that scores
every record, adds the anomaly fields and re-emits it to the next hop before acknowledging the chunk."""
