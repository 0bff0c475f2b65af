"""Pipeline steps, one module each; plain functions here, Prefect wrappers beside them."""
