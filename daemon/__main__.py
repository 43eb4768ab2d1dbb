"""``python -m agentfirm.daemon``: the daemon in the foreground (what ``daemon start`` detaches)."""

import sys

from agentfirm.errors import AgentfirmError, disk_full

from .process import main

try:
    sys.exit(main())
except Exception as exc:
    err = exc if isinstance(exc, AgentfirmError) else disk_full(exc)
    if err is None:
        raise
    sys.stderr.write(f"agentfirm daemon: error: {err}\n")
    sys.exit(err.exit_code)
