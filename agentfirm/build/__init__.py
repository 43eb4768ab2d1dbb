"""The Build Master: runs an approved task spec's module DAG as parallel sub-agents, then stitches
the outputs into one deliverable and judges it against the quality checklist (ARCHITECTURE.md §5).

``scheduler`` orders the work, ``subagent`` briefs one specialist, ``budget_gate`` holds refused
calls until the human adds budget or aborts, ``assembly`` builds the stitch and judge prompts and
documents, and ``master.BuildMaster`` ties them to the store, the bus and the router."""
