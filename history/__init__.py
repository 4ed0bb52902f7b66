"""KPI history: accumulators per scope and minute/hour in SQL, beyond the live 24 h
(docs/kpis.md "History and comparison")."""
