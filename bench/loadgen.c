// Load generator for the trace_open benchmark: N openat(2)+close(2) calls.
// Usage: loadgen N PATH [--wait]
//   --wait: print our pid, then wait for a line on stdin before starting
//           (so the benchmark can start a gadget filtered on this pid).
// Prints: calls, seconds, calls/s.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s N PATH [--wait]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	const char *path = argv[2];
	if (argc > 3 && !strcmp(argv[3], "--wait")) {
		char line[16];
		printf("%d\n", getpid());
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int fd = openat(AT_FDCWD, path, O_RDONLY);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%ld %.6f %.0f\n", n, s, n / s);
	return 0;
}
