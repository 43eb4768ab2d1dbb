"""The agentfirm daemon (installed as ``agentfirm.daemon``): hosts the Master Agent behind an HTTP
API on a Unix socket, so tasks outlive the terminals that started them.

``process`` starts, stops and runs it; ``serving`` runs the API under uvicorn; ``server`` is the
FastAPI app; ``service`` the task host; ``client`` talks to it over the socket. Heavy imports
(FastAPI, uvicorn) stay in ``serving``, ``server`` and ``service``: a CLI that only checks or
calls the daemon never loads them.
"""
