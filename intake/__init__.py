"""What comes in: task lists, agent patches and result files of the source benchmark."""
