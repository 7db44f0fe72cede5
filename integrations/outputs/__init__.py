"""Next-hop writers for re-emitting enriched records: Forward (Fluentd / Fluent Bit ``in_forward``),
Elasticsearch ``_bulk`` and Splunk HEC. Each ``send`` returns only once the next hop accepted the records
(or refused some of them for good, which is logged) and raises ``NextHopError`` otherwise."""
