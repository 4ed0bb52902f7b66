"""Runnable processes and their wiring: config, embedded broker, worker, API, simulator, replay, run_all."""
