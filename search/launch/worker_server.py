"""What multiprocessing's forkserver imports once: the process `hpsearch run` forks its local
workers from (search.launch.local).

Importing the worker's code here, torch with it, is what lets each worker start in milliseconds
instead of importing torch anew (seconds of CPU a worker). Nothing here touches CUDA or a
database: a fork copies such state, and each worker makes its own. What a worker takes from the
run rather than from this server (the environment, standard output and error) is
search.launch.inherited's.

The server blocks SIGTERM. A signal sent to the whole process group (SLURM's scancel, a `kill` of
the group) reaches the workers, which checkpoint and stop; had the server died of it, the pipes
that tell `hpsearch run` how its workers ended would have closed, and every worker would have
seemed to fail at once while still saving its trial. Blocked, not ignored: a worker starts with
the server's signal mask, so a SIGTERM sent in its first milliseconds waits until the worker's
handler is in place (search.launch.local) rather than being lost. The server ends when `hpsearch
run` does.
"""

import signal

import search.launch.local  # noqa: F401  (what every worker runs)

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
