"""What multiprocessing's forkserver imports once: the process `hpsearch run` forks its local
workers from (search.launch.local).

Importing the worker's code here, torch with it, is what lets each worker start in milliseconds
instead of importing torch anew (seconds of CPU a worker). Nothing here touches CUDA or a
database: a fork copies such state, and each worker makes its own. What a worker takes from the
run rather than from this server (the environment, standard output and error) is
search.launch.inherited's.

The server blocks SIGTERM and SIGINT, from before it imports torch. A signal sent to the whole
process group (SLURM's scancel, a `kill` of the group, a Ctrl-C at the terminal) reaches the
workers, which checkpoint and stop; had the server died of it, the pipes that tell `hpsearch run`
how its workers ended would have closed, and every worker would have seemed to fail at once while
still saving its trial (a Ctrl-C as it imported torch killed it with a traceback). Blocked, not
ignored: a worker starts with the server's signal mask, so a signal sent in its first moments
waits until the worker's handler is in place (search.launch.local) rather than being lost, or, a
Ctrl-C, killing it with a KeyboardInterrupt (`run` then said it "exited with an error"). The
server ends when `hpsearch run` does.
"""

import gc
import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

import search.launch.local  # noqa: E402, F401  (what every worker runs; after the mask, see above)

# What was imported stays for the server's life and its workers': frozen, the garbage collector
# never walks it again, neither in a worker's collections (nor writes to the pages a fork shares)
# nor as the server ends, when those passes cost 2 s of CPU (2-core VM, 2026-12-07) beside
# whatever runs next. Nothing the server or a worker makes later is frozen.
gc.freeze()
