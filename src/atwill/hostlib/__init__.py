"""The project's host library, shared by the agent, the controller, the lab and the guest
builder: commands, undo stacks, child processes, service accounts, and the overlay."""
