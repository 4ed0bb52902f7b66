"""Alert rules, evaluation, lifecycle, delivery and history (docs/api.md "Rules", docs/design.md "Alert engine")."""
