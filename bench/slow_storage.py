"""Slow storage as a restarted script meets it, for the bench's Python scripts
(the group is made by slow-storage.ts)."""
import os


def go_cold(procs):
    """Empty the machine's caches, then join the slow-storage group (``procs``, its
    cgroup.procs): from here on this process and the workers it starts read the disk at
    the group's rate.

    Root, bench only: drop_caches 3 drops every clean, unused page, dentry and inode of the
    machine, not only the data set's. 2 (dentries and inodes) is not enough: ext4's metadata
    blocks would stay in the block device's page cache, and a walk would read nothing from
    the disk."""
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3')
    with open(procs, 'w') as f:
        f.write(str(os.getpid()))
