"""The data layer: fetching, verifying and describing the datasets, and the CSV / text checks the
workloads read them through. Never imports a workload (workloads import from here).
"""
