"""FastAPI app: KPI figures, event ingest, Prometheus metrics, health; fed by the state topic."""
