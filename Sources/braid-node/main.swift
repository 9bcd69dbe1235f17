// Placeholder entry point, replaced by the daemon's command.
print("braid-node")
