"""The contract between simulation and execution: one workflow, one set of distributions, two runs."""
