"""The simulation harness: fault plans, workloads, the model oracle, named scenarios."""
