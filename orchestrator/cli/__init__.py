"""The ``deeptag`` command line: :func:`orchestrator.cli.app.main` runs it, and
:func:`~orchestrator.cli.app.build` makes the whole application."""
