"""What goes out: the per-agent report and result files in the source schema."""
