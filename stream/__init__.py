"""The stream side: event contract, pure KPI folds and windows, per-partition state, Faust wiring."""
