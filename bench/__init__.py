"""Benchmarks (`make bench`): throughput, end-to-end latency, memory. Results in bench/results.*"""
