"""The agentfirm daemon (installed as ``agentfirm.daemon``).

Hosts the Master Agent behind an HTTP API on a Unix socket. Until it lands, every CLI command runs
in-process (the ``--no-daemon`` path).
"""
