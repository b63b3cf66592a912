"""Training ensembles, floor by floor: ``plan`` (chunks and the backend that trains each),
``data`` (data sets and initial parameters from the members' seeds), ``train`` (the
backends: vmapped autodiff, RTRL, the hand-derived BPTT of ``bptt``, the ``native`` CPU
kernels), ``run`` (a chunk's trip as one picklable unit, and the loop that feeds the
store) and ``sweep`` (the notebook entry)."""
