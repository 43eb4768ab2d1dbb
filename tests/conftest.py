"""The throwaway servers' fixtures (``pg_server``, ``pg_url``, ``pg_empty_url``, ``redis_server``,
``redis_url``, ``unused_port``) for every test directory. Registered here once rather than imported
into each module: an imported session fixture is a new fixture per module, so each module started
its own server; and a plugin named here is set up for assert rewriting before anything imports it.
"""

pytest_plugins = ("tests.integration.pg_server", "tests.integration.redis_server")
