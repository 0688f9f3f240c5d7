"""The agent protocol (agent.proto) and its generated stubs."""
