"""The host's mechanisms the lab builds with: network namespaces and their links (netns, network),
cgroups, mounts, loop devices (loopdisk), processes, what a lab owns and how it is ended (ownership),
the names it gives them (names) and where the programs are found (tools)."""
