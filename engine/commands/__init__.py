"""Sub-commands of the ``verdict`` command line, one module each, registered in ``engine.cli``."""

__all__: list[str] = []
