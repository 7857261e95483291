/* `runas UID PROG [ARG...]` drops to UID (real, effective and saved uid and gid; no supplementary groups)
 * and execs PROG: a way to run a set-uid program as an ordinary user where no `setpriv --reuid` exists
 * (busybox's has none). */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: runas UID PROG [ARG...]\n");
        return 2;
    }
    int id = atoi(argv[1]);
    if (setgroups(0, NULL) || setresgid(id, id, id) || setresuid(id, id, id)) {
        perror("runas: drop to uid");
        return 1;
    }
    execv(argv[2], &argv[2]);
    perror("runas: exec");
    return 1;
}
