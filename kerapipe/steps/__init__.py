"""The stages, one module each: they receive the run context (kerapipe/context.py) and only
orchestrate the library's pieces. ``stages/*.py`` (DVC's entry points) and the ``kerapipe``
command call them through kerapipe/cli.py."""
