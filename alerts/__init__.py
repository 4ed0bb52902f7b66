"""Alert rules, evaluation, lifecycle, delivery and history (see shared/spec/alerts.md; next issue)."""
