"""``python -m agentfirm.daemon``: the daemon in the foreground (what ``daemon start`` detaches)."""

import sys

from agentfirm.errors import AgentfirmError

from .process import main

try:
    sys.exit(main())
except AgentfirmError as err:
    sys.stderr.write(f"agentfirm daemon: error: {err}\n")
    sys.exit(err.exit_code)
