"""isobench: does an AI agent's performance patch hold up against the human commit?

The repository's top-level folders (models/, tasks/, flows/, store/, intake/, report/, cli/,
migrations/) are installed as subpackages of this one import name.
"""

__version__ = "0.1.0"
