/* Tries the syscalls named on its command line and prints one line each: NAME=ok, or NAME=ERRNO (the
 * errno's symbolic name). Used inside containers to see what the seccomp filter lets through; each call
 * is harmless when it is allowed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_lsm_list_modules
#define SYS_lsm_list_modules 461
#endif
#define X32_BIT 0x40000000L

static long try(const char *what) {
    if (!strcmp(what, "personality-rie")) return syscall(SYS_personality, READ_IMPLIES_EXEC);
    if (!strcmp(what, "personality-linux")) return syscall(SYS_personality, PER_LINUX);
    if (!strcmp(what, "personality-query")) return syscall(SYS_personality, 0xffffffffL);
    if (!strcmp(what, "vsock")) return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    /* AF_VSOCK with a bit above the int the kernel reads: a 64-bit comparison would let it by. */
    if (!strcmp(what, "vsock-high")) return syscall(SYS_socket, (1L << 32) | AF_VSOCK, SOCK_STREAM, 0);
    if (!strcmp(what, "inet")) return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (!strcmp(what, "unix")) return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    /* A syscall of this kernel that Docker's list leaves out (CAP_SYS_ADMIN only): E2BIG when let through. */
    if (!strcmp(what, "lsm-list")) {
        unsigned int size = 0;
        return syscall(SYS_lsm_list_modules, NULL, &size, 0);
    }
    if (!strcmp(what, "nr1000")) return syscall(1000);
    if (!strcmp(what, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(what, "x32-getpid")) return syscall(X32_BIT | SYS_getpid);
    /* A size of 0 is EINVAL once the call is let through. */
    if (!strcmp(what, "clone3")) return syscall(SYS_clone3, NULL, 0);
    if (!strcmp(what, "fork")) {
        pid_t pid = fork();
        if (pid == 0) _exit(7);
        if (pid < 0) return -1;
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7) {
            errno = ECHILD;
            return -1;
        }
        return 0;
    }
    /* kcmp(2) of this process with itself (KCMP_VM = 1): gated on CAP_SYS_PTRACE in Docker's profile. */
    if (!strcmp(what, "kcmp")) return syscall(SYS_kcmp, getpid(), getpid(), 1, 0, 0);
    /* clone(CLONE_NEWUTS) as fork: the MASKED_EQ rule on clone's flags, gated on CAP_SYS_ADMIN; the child
       ends at once. */
    if (!strcmp(what, "clone-uts")) {
        long pid = syscall(SYS_clone, 0x04000000L | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid < 0) return -1;
        waitpid((pid_t)pid, NULL, 0);
        return 0;
    }
    /* unshare(CLONE_NEWUTS): gated on CAP_SYS_ADMIN; only this short-lived process gets the namespace. */
    if (!strcmp(what, "unshare-uts")) return syscall(SYS_unshare, 0x04000000L);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long rc = try(argv[i]);
        if (rc == -2) {
            printf("%s=unknown-probe\n", argv[i]);
        } else if (rc < 0) {
            const char *name = strerrorname_np(errno);
            printf("%s=%s\n", argv[i], name ? name : "?");
        } else {
            printf("%s=ok\n", argv[i]);
        }
        fflush(stdout);
    }
    return 0;
}
