"""`manage.py benchmark`: the performance report's benchmark suite as a product command.

targets  the report's endpoints and the keys-CSV principals that call them
runner   client workers with keep-alive connections, timed with a monotonic clock
stats    exact percentiles, per-endpoint figures and baseline comparison
report   the report's text block, the comparison table and the JSON document
plot     latency distributions drawn with matplotlib
"""
