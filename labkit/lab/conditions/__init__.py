"""The path's conditions, one object each with one lifecycle (labkit.lab.conditions.base): the server's
CPU (server_cpu: cpu_limits and cpu_emulation, its speed ratio measured by speed_meter as a lab starts), the VM's storage (storage), the lab's TLS (tls), the
client's destination (client_dest: a local disk or sharedfs; in a time-dilated lab the compute nodes' CPU
groups, client_cpu), the scale model (machine), and the mechanisms they use: the FUSE delay file system
(delayfs, delayfs_cli, bucket; streamdigest for a shared fs that verifies and keeps no byte) and
writeback's ceiling on buffered writes.

Kept empty of imports: the FUSE process (`python -m labkit.lab.conditions.delayfs_cli`) loads only what it needs.
"""
