"""Small helpers the agent uses to change its host: commands, undo stacks, child processes."""
