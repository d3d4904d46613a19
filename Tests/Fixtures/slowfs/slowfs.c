// slowfs: a FUSE pass-through to a backing folder whose every change (create, write, rename,
// unlink, mkdir, fsync...) first sleeps a fixed time, as a slow or overloaded disk would. The
// coordinator's tests mount it under an output folder to show that a slow disk does not stall
// the coordinator's connections.
//
//   slowfs BACKING MOUNTPOINT DELAY_MS [fuse options, e.g. -f]
//
// Built by the test that needs it: cc slowfs.c $(pkg-config --cflags --libs fuse3).
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char backing[PATH_MAX];
static long delay_ms;

static void slow(void) {
    struct timespec pause = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static void real(char out[PATH_MAX], const char *path) { snprintf(out, PATH_MAX, "%s%s", backing, path); }

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    char p[PATH_MAX];
    real(p, path);
    return lstat(p, st) == -1 ? -errno : 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
    (void)offset, (void)fi, (void)flags;
    char p[PATH_MAX];
    real(p, path);
    DIR *dir = opendir(p);
    if (!dir) return -errno;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        struct stat st = {0};
        st.st_ino = entry->d_ino;
        st.st_mode = entry->d_type << 12;
        if (fill(buf, entry->d_name, &st, 0, 0)) break;
    }
    closedir(dir);
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
    char p[PATH_MAX];
    real(p, path);
    if (fi->flags & (O_WRONLY | O_RDWR | O_TRUNC)) slow();
    int fd = open(p, fi->flags);
    if (fd == -1) return -errno;
    fi->fh = fd;
    return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
    slow();
    char p[PATH_MAX];
    real(p, path);
    int fd = open(p, fi->flags, mode);
    if (fd == -1) return -errno;
    fi->fh = fd;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    ssize_t n = pread(fi->fh, buf, size, offset);
    return n == -1 ? -errno : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    slow();
    ssize_t n = pwrite(fi->fh, buf, size, offset);
    return n == -1 ? -errno : (int)n;
}

static int fs_release(const char *path, struct fuse_file_info *fi) {
    (void)path;
    close(fi->fh);
    return 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)path;
    slow();
    int result = datasync ? fdatasync(fi->fh) : fsync(fi->fh);
    return result == -1 ? -errno : 0;
}

static int fs_mkdir(const char *path, mode_t mode) {
    slow();
    char p[PATH_MAX];
    real(p, path);
    return mkdir(p, mode) == -1 ? -errno : 0;
}

static int fs_unlink(const char *path) {
    slow();
    char p[PATH_MAX];
    real(p, path);
    return unlink(p) == -1 ? -errno : 0;
}

static int fs_rmdir(const char *path) {
    slow();
    char p[PATH_MAX];
    real(p, path);
    return rmdir(p) == -1 ? -errno : 0;
}

static int fs_rename(const char *from, const char *to, unsigned int flags) {
    if (flags) return -EINVAL;
    slow();
    char a[PATH_MAX], b[PATH_MAX];
    real(a, from);
    real(b, to);
    return rename(a, b) == -1 ? -errno : 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    slow();
    if (fi) return ftruncate(fi->fh, size) == -1 ? -errno : 0;
    char p[PATH_MAX];
    real(p, path);
    return truncate(p, size) == -1 ? -errno : 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
    (void)fi;
    char p[PATH_MAX];
    real(p, path);
    return chmod(p, mode) == -1 ? -errno : 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    (void)fi;
    char p[PATH_MAX];
    real(p, path);
    return utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW) == -1 ? -errno : 0;
}

static int fs_statfs(const char *path, struct statvfs *st) {
    char p[PATH_MAX];
    real(p, path);
    return statvfs(p, st) == -1 ? -errno : 0;
}

static const struct fuse_operations operations = {
    .getattr = fs_getattr, .readdir = fs_readdir, .open = fs_open, .create = fs_create, .read = fs_read,
    .write = fs_write, .release = fs_release, .fsync = fs_fsync, .mkdir = fs_mkdir, .unlink = fs_unlink,
    .rmdir = fs_rmdir, .rename = fs_rename, .truncate = fs_truncate, .chmod = fs_chmod, .utimens = fs_utimens,
    .statfs = fs_statfs,
};

int main(int argc, char *argv[]) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s BACKING MOUNTPOINT DELAY_MS [fuse options]\n", argv[0]);
        return 2;
    }
    if (!realpath(argv[1], backing)) {
        perror(argv[1]);
        return 2;
    }
    delay_ms = atol(argv[3]);
    // fuse_main sees: program, mount point, then the options after the delay.
    char *args[64];
    int count = 0;
    args[count++] = argv[0];
    args[count++] = argv[2];
    for (int i = 4; i < argc && count < 63; i++) args[count++] = argv[i];
    args[count] = NULL;
    return fuse_main(count, args, &operations, NULL);
}
