"""The lab: the declared path built on this machine with its real programs (lab.Lab orchestrates).

    host/        the host's mechanisms: namespaces, links, cgroups, mounts, loop devices, processes, ownership
    programs/    one module per program (nginx, uwsgi, docker-proxy, the DNAT rules, iperf3); PROGRAMS, PUBLISHERS
    conditions/  what the path's parts are held to, one object each: links, TLS, storage, the server's CPU,
                 the client's destination (and the FUSE delay file system, shared fs, writeback they use)
    running.py   the programs as they run; supervision.py: status, health, heal; changes.py: the pure apply plan
"""
