/*
 * lab-helper: the few things the labs need inside a busybox container that busybox cannot do.
 * Built static (the container's rootfs has no libc) by build.rs and bind-mounted into the
 * container as /lab-helper.
 *
 *   lab-helper escape PATH   the classic chroot escape, then print PATH's first line
 *   lab-helper shm-create KEY   create a System V shared memory segment with KEY (hex)
 *   lab-helper shm-find KEY     is there a segment with KEY in this IPC namespace?
 *   lab-helper getpid N         time N getpid() system calls, print ns per call
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * chroot(2) changes only where "/" resolves for this process; it does not move the current
 * directory. So: chroot into a subdirectory while the cwd stays outside it, walk ".." up (no
 * root boundary is crossed on the way, so nothing stops us at the old root), and chroot to
 * where we end up: the real root of the mount namespace. After pivot_root(2) and unmounting the
 * old root there is nothing above the container's root to walk up to.
 */
static int escape(const char *path) {
    if (mkdir("/.lab-escape", 0700) != 0 && errno != EEXIST) {
        perror("mkdir /.lab-escape");
        return 2;
    }
    if (chroot("/.lab-escape") != 0) {
        perror("chroot /.lab-escape");
        return 2;
    }
    for (int i = 0; i < 256; i++) {
        if (chdir("..") != 0) {
            perror("chdir ..");
            return 2;
        }
    }
    if (chroot(".") != 0) {
        perror("chroot .");
        return 2;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("still inside: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[256] = {0};
    if (fgets(line, sizeof line, f) == NULL) {
        line[0] = 0;
    }
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    printf("escaped: %s says \"%s\"\n", path, line);
    return 0;
}

static int shm(const char *key_text, int create) {
    key_t key = (key_t)strtol(key_text, NULL, 16);
    int id = shmget(key, 4096, create ? (IPC_CREAT | 0600) : 0600);
    if (id < 0) {
        printf("no segment with key 0x%x: %s\n", (unsigned)key, strerror(errno));
        return 1;
    }
    printf("%s segment with key 0x%x: shmid %d\n", create ? "created" : "found", (unsigned)key, id);
    return 0;
}

static int time_getpid(long n) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        syscall(SYS_getpid); /* the raw call: glibc does not cache it, but be explicit */
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    printf("%.1f ns per getpid (%ld calls)\n", ns / (double)n, n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "escape") == 0) return escape(argv[2]);
    if (argc == 3 && strcmp(argv[1], "shm-create") == 0) return shm(argv[2], 1);
    if (argc == 3 && strcmp(argv[1], "shm-find") == 0) return shm(argv[2], 0);
    if (argc == 3 && strcmp(argv[1], "getpid") == 0) return time_getpid(atol(argv[2]));
    fprintf(stderr, "usage: lab-helper escape PATH | shm-create KEY | shm-find KEY | getpid N\n");
    return 64;
}
