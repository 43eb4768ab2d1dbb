from agentfirm.cli.app import main

main()
