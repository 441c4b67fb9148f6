"""What the tests share: the services and workers they run on (``stack``, ``workers``),
talking to a worker (``api``, ``openapi``, ``cli``), local servers speaking the providers'
protocols (``servers``), and the fixtures, in ``plugin`` (loaded by tests/conftest.py)."""
