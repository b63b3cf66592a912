"""Training ensembles: the sweep's plan and data, the trainers (vmapped autodiff, RTRL, the
hand-derived BPTT, the native CPU kernels), and the run loop that feeds the store."""
