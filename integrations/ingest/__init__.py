"""What every score-and-forward ingest path shares (Forward receiver, OTLP logs): records in, the scorer
asked (fail-open), each record enriched with ``ScoredEvent.document()``."""
