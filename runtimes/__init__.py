"""Where an arm's server runs: a local process (the embedded default) or a Docker container."""
