/* file: bounded reads, atomic writes. See file.h. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *file_read(const char *path, size_t max, size_t *n, char err[FILE_ERRLEN])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, FILE_ERRLEN, "cannot read %s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    int e = 0;
    if (fstat(fd, &st) != 0) {
        e = errno;
        snprintf(err, FILE_ERRLEN, "cannot read %s: %s", path, strerror(e));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        e = EINVAL;
        snprintf(err, FILE_ERRLEN, "%s is not a regular file", path);
        goto fail;
    }
    /* The size may change while we read: read up to max + 1 whatever
     * fstat said, so a file that grew past the ceiling is still refused. */
    size_t cap = (size_t)st.st_size < max ? (size_t)st.st_size : max;
    buf = malloc(cap + 2);
    if (!buf) {
        e = ENOMEM;
        snprintf(err, FILE_ERRLEN, "out of memory reading %s", path);
        goto fail;
    }
    size_t got = 0;
    for (;;) {
        if (got == cap + 1) {
            if (cap >= max)
                break;
            /* It grew; take more, up to the ceiling. */
            size_t ncap = cap * 2 + 4096 < max ? cap * 2 + 4096 : max;
            char *nb = realloc(buf, ncap + 2);
            if (!nb) {
                e = ENOMEM;
                snprintf(err, FILE_ERRLEN, "out of memory reading %s", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + got, cap + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            snprintf(err, FILE_ERRLEN, "cannot read %s: %s", path, strerror(e));
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got > max) {
        e = EFBIG;
        snprintf(err, FILE_ERRLEN, "%s is larger than %zu bytes", path, max);
        goto fail;
    }
    close(fd);
    buf[got] = '\0';
    *n = got;
    return buf;
fail:
    free(buf);
    close(fd);
    errno = e;
    return NULL;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int flags,
                      char err[FILE_ERRLEN])
{
    char tmp[4200], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp ||
        snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        snprintf(err, FILE_ERRLEN, "cannot write %.200s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, FILE_ERRLEN, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = write_all(fd, data, len) == 0 && fchmod(fd, mode) == 0 && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok) {
        if (flags & FILE_NO_REPLACE) {
            ok = link(tmp, path) == 0;
            e = errno;
            unlink(tmp);
        } else {
            ok = rename(tmp, path) == 0;
            e = errno;
        }
    }
    if (!ok) {
        unlink(tmp);
        snprintf(err, FILE_ERRLEN, "cannot write %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    /* The rename is durable once the directory is; a failure here leaves
     * the new file in place, so it is not an error. */
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
