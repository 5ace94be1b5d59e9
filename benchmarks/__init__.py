"""`python -m benchmarks`: how fast bnnames is, measured side by side on this machine.

Six figures (issue 3), each the median of several runs with their min-max: the training step
against the reference autograd loop (paired, in one process), the default 200k-step
`bnnames train` as a whole process cold and warm, eval of the full training split, sampling
10,000 names, CLI start-up, and the peak memory of training. Issue 10 adds: the default run
warm after a reboot (fresh temporary folder) and on another alphabet size, the wavenet preset's
step against the reference (paired, with the losses' agreement over 1,000 steps) and as whole
processes; every process figure also gives its CPU seconds. `--only wavenet` runs those alone.
Prints a table, writes JSON.
"""
