"""The demo: a git repository of the simulated inference server with a slow parent commit, a
faster human commit and five agent patches of every kind, measured by the real pipeline."""
