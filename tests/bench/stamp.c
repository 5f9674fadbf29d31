/* The supervised program of tests/bench/supervisors.py, the same for every supervisor.
 *
 * Reads CLOCK_MONOTONIC first thing after exec, writes "NANOSECONDS PID\n" to the file given
 * as argv[1] (a relative path is taken from the working directory; with no argument, to
 * "stamp"), then sleeps until a signal ends it. runsv runs `./run` and s6-supervise `./run NAME`
 * in the service directory, so ./run is a symlink to this binary (no shell involved) and the
 * stamp is SERVICEDIR/stamp (runit) or SERVICEDIR/NAME (s6). The file is written
 * under a temporary name and renamed, so a reader never sees half a line. Exit 111 if the
 * stamp cannot be written. Built statically by the script: `gcc -O2 -static`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = argc > 1 ? argv[1] : "stamp";
    char tmp[4096], line[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(line, sizeof line, "%lld %d\n",
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, n) != n || close(fd) != 0 || rename(tmp, path) != 0)
        return 111;
    for (;;)
        pause();
}
