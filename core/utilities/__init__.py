"""Prefect's `prefect.utilities` names that user code imports."""
