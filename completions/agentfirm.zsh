#compdef agentfirm

_agentfirm_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _AGENTFIRM_COMPLETE=complete_zsh agentfirm)
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _agentfirm_completion "$@"
else
  compdef _agentfirm_completion agentfirm
fi
