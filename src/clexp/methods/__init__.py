"""Continual-learning methods on one interface (see `base.Method`), registered by name.

The registry (`registry.py`) and this package's import are torch-free, so the configuration
code can check method names and options without loading torch; `build_method` imports the
method's module when a run needs it.
"""
