"""Same-run reference implementations the workloads compare Rapport with."""
