"""Where a build runs: in-process, a notebook kernel, Colab, a Redis-queue worker; the remote
entry point."""
