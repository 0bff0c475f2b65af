"""Prefect flows: the three-way flow per task, the sweep, retry-failed and scheduled reruns."""
