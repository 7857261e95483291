/* An attacker's tool: makes btrfs subvolumes with BTRFS_IOC_SUBVOL_CREATE, which needs no capability.
 * subvol DIR NAME... creates DIR/NAME1, then DIR/NAME1/NAME2 inside it, and so on, each holding a file
 * "data"; prints "made N" and exits 0, or the failing step and its errno and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: subvol DIR NAME...\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", argv[1]);
    for (int i = 2; i < argc; i++) {
        int dir = open(path, O_RDONLY | O_DIRECTORY);
        if (dir < 0) {
            printf("open %s: %s\n", path, strerror(errno));
            return 1;
        }
        struct btrfs_ioctl_vol_args args;
        memset(&args, 0, sizeof args);
        snprintf(args.name, sizeof args.name, "%s", argv[i]);
        if (ioctl(dir, BTRFS_IOC_SUBVOL_CREATE, &args) != 0) {
            printf("subvol create %s/%s: %s\n", path, argv[i], strerror(errno));
            return 1;
        }
        close(dir);
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/%s", argv[i]);
        char file[4200];
        snprintf(file, sizeof file, "%s/data", path);
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "nested\n", 7) != 7) {
            printf("write %s: %s\n", file, strerror(errno));
            return 1;
        }
        close(fd);
    }
    printf("made %d\n", argc - 2);
    return 0;
}
