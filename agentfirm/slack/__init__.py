"""The optional Slack front end (``agentfirm slack``): a slack-bolt app bridged to the daemon.

A mention or ``/agentfirm REQUEST`` creates a task and a thread; every question the task asks
(clarify, plan, budget, review, failure) is posted in that thread and decided from it, one
progress message per task is edited in place, and the final summary carries the cost table.

Nothing outside this package imports it: the core stays free of Slack, and the CLI imports it
only inside the ``slack`` command.
"""
