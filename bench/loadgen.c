// Load generator for the trace_open benchmark: N openat(2)+close(2) calls.
// Usage: loadgen N PATH [--wait] [--rate R]
//   --wait: print our pid, then wait for a line on stdin before starting
//           (so the benchmark can start a gadget filtered on this pid).
//   --rate: at most R calls per second (in steps of 50 calls), to compare
//           the agent's cost per event at equal event rates.
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
		fprintf(stderr, "usage: %s N PATH [--wait] [--rate R]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	const char *path = argv[2];
	int wait = 0;
	double rate = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--wait")) {
			wait = 1;
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			rate = atof(argv[++i]);
		} else {
			fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	if (wait) {
		char line[16];
		printf("%d\n", getpid());
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (rate > 0 && i % 50 == 0) {
			// Sleep until call i is due.
			double due = i / rate;
			struct timespec t = a;
			t.tv_sec += (time_t)due;
			t.tv_nsec += (long)((due - (time_t)due) * 1e9);
			if (t.tv_nsec >= 1000000000L) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000L;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
		}
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
