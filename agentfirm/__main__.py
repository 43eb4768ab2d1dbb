from agentfirm.cli import main

main()
