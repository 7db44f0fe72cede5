"""Elasticsearch integration: ``logwarden es-proxy`` (anomaly fields added to documents in every bulk on its
way into the cluster) and ``logwarden es-worker`` (session verdicts, back-fill and analysts' labels, written
back with the official client). Installs into the cluster: ``plugins/elasticsearch/``."""
