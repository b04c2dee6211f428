/* Unit tests for file: bounded reads (exact ceiling, one byte over,
 * missing, not a regular file) and atomic writes (content, exact mode
 * whatever the umask, replace, no-replace, failure leaves the old file
 * and no temporary behind). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "check.h"
#include "file.h"

static int tests_run;
static char dir[256];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Entries in the test directory besides . and .. */
static int entries(void)
{
    DIR *d = opendir(dir);
    CHECK(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void reads(void)
{
    char p[512], err[FILE_ERRLEN];
    size_t n = 99;
    path_in(p, sizeof p, "r.txt");
    CHECK_EQ(file_write_atomic(p, "0123456789", 10, 0600, 0, err), 0);
    char *b = file_read(p, 10, &n, err);
    CHECK(b);
    CHECK_EQ(n, 10);
    CHECK_STR(b, "0123456789"); /* NUL-terminated */
    free(b);
    errno = 0;
    CHECK(file_read(p, 9, &n, err) == NULL);
    CHECK_EQ(errno, EFBIG);
    CHECK(strstr(err, "larger than 9 bytes") != NULL);
    path_in(p, sizeof p, "missing");
    CHECK(file_read(p, 100, &n, err) == NULL);
    CHECK_EQ(errno, ENOENT);
    CHECK(file_read(dir, 100, &n, err) == NULL);
    CHECK(strstr(err, "not a regular file") != NULL);
    /* An empty file reads as empty, not as an error. */
    path_in(p, sizeof p, "empty");
    CHECK_EQ(file_write_atomic(p, "", 0, 0600, 0, err), 0);
    b = file_read(p, 100, &n, err);
    CHECK(b);
    CHECK_EQ(n, 0);
    CHECK_EQ(b[0], '\0');
    free(b);
    /* A file the kernel sizes as 0 but that has content (procfs) is read
     * whole, up to the ceiling. */
    b = file_read("/proc/self/status", 1 << 20, &n, err);
    CHECK(b);
    CHECK(n > 0 && strstr(b, "Name:") == b);
    free(b);
    CHECK(file_read("/proc/self/status", 4, &n, err) == NULL);
    CHECK_EQ(errno, EFBIG);
}

static void writes(void)
{
    char p[512], err[FILE_ERRLEN];
    size_t n;
    int before = entries();
    path_in(p, sizeof p, "w.txt");
    mode_t old = umask(0077);
    CHECK_EQ(file_write_atomic(p, "one", 3, 0644, 0, err), 0);
    umask(old);
    struct stat st;
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0644); /* exactly the mode asked for */
    CHECK_EQ(file_write_atomic(p, "two!", 4, 0600, 0, err), 0);
    char *b = file_read(p, 100, &n, err);
    CHECK_STR(b, "two!");
    free(b);
    CHECK_EQ(stat(p, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* No-replace refuses an existing file and leaves it be. */
    CHECK_EQ(file_write_atomic(p, "three", 5, 0600, FILE_NO_REPLACE, err), -1);
    CHECK_EQ(errno, EEXIST);
    b = file_read(p, 100, &n, err);
    CHECK_STR(b, "two!");
    free(b);
    char q[512];
    path_in(q, sizeof q, "new.txt");
    CHECK_EQ(file_write_atomic(q, "fresh", 5, 0600, FILE_NO_REPLACE, err), 0);
    b = file_read(q, 100, &n, err);
    CHECK_STR(b, "fresh");
    free(b);
    CHECK_EQ(entries(), before + 2); /* no temporary left behind */
    /* A directory that does not exist: an error, nothing written. */
    path_in(q, sizeof q, "no/such/dir/x");
    CHECK_EQ(file_write_atomic(q, "x", 1, 0600, 0, err), -1);
    CHECK(strstr(err, "cannot write") != NULL);
    /* The target is a directory: rename fails, the temporary is removed. */
    path_in(q, sizeof q, "sub");
    CHECK_EQ(mkdir(q, 0700), 0);
    char inner[600];
    snprintf(inner, sizeof inner, "%s/f", q);
    CHECK_EQ(file_write_atomic(inner, "f", 1, 0600, 0, err), 0);
    CHECK_EQ(file_write_atomic(q, "x", 1, 0600, 0, err), -1);
    CHECK_EQ(entries(), before + 3);
    unlink(inner);
    rmdir(q);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ck-test-file-%d", (int)getpid());
    CHECK_EQ(mkdir(dir, 0700), 0);
    TEST(reads);
    TEST(writes);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    TEST_MAIN_END();
}
