"""KPI history: accumulators per scope and minute/hour in SQL, beyond the live 24 h (kpis.md "History")."""
