"""`manage.py benchmark`: the latency benchmark of our hot endpoints, as a product command.

targets  the seven benchmarked endpoints and the keys-CSV principals that call them
runner   client workers with keep-alive connections, timed with a monotonic clock
stats    exact percentiles, per-endpoint figures and baseline comparison
report   the per-endpoint text block, the comparison table and the JSON document
plot     latency distributions drawn with matplotlib
server_cpu  CPU per request of the server process group (/proc) and of the client
floor    the floor: a minimal DRF view with one django-redis GET, under the same gunicorn (config.settings_floor)
floor_compare  alternating wrk runs of the floor and of the balance endpoint (scripts/floor_vs_balance.sh)
pyspy_table  the top costs per request from a py-spy raw recording
"""
