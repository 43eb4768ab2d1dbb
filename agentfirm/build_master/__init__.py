"""The Build Master: runs an approved task spec's module DAG as parallel sub-agents, then stitches
the outputs into one deliverable and judges it against the quality checklist (ARCHITECTURE.md §5).

``scheduler`` orders the work, ``subagent`` briefs one specialist, ``module_runner`` runs one
module (retries, research escalations), ``research`` answers a stuck sub-agent's questions from
the task's ``attachments`` (and the web, where the provider can search), ``budget_gate`` holds
refused calls until the human adds budget or aborts, ``assembly`` builds the stitch and judge
prompts and documents, and ``master.BuildMaster`` ties them to the store, the bus and the
router."""
