"""Where workers start: local processes on this machine's GPUs or cores (local.py, forked from the
server in worker_server.py, which forking.py starts), SLURM jobs and Kubernetes Jobs.

Nothing is imported here: search.launch.forking must stay importable without torch, which
search.launch.local imports."""
