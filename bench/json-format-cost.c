// SPDX-License-Identifier: Apache-2.0
// The C reference of `make decode-check` (scripts/decode_cost.py): the
// hand-written C formatting of `make bench`'s C reader (bench/json-format.h)
// run over the same recorded ring records as the agent's decoder, so that
// callgrind compares instructions per event of the two on identical input.
//
// Usage: json-format-cost OBJECT RECORDS PASSES
//
// The arguments are those of benches' decode-cost (OBJECT is accepted and
// not read: the C formatter knows its one layout, gadgets/trace_open's
// struct event). RECORDS: each record a 4-byte little-endian length and its
// bytes (benches/src/bin/floor-reader.rs). Formats every record once (warm:
// the user and group name lookups), then PASSES more times; the lines go to
// /dev/null a 256 KiB buffer at a time, as the reader writes its pipe.
// Prints `records passes` on stdout. With DECODE_COST_DUMP=FILE set, the
// warm-up pass's lines are written to FILE (as decode-cost does), so the
// check can compare the two formatters' lines. Exit 1 with a message on
// stderr when RECORDS cannot be read or a record is cut short.
//
// Build: cc -O2 -o json-format-cost bench/json-format-cost.c (no libbpf).
#include "json-format.h"

#include <fcntl.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s OBJECT RECORDS PASSES\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		fprintf(stderr, "json-format-cost: opening %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	size_t cap = 1 << 20, len = 0;
	unsigned char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			// On failure the old buffer is freed and reading stops.
			unsigned char *grown = realloc(buf, cap *= 2);
			if (!grown)
				free(buf);
			buf = grown;
		}
	}
	if (!buf || ferror(f)) {
		fprintf(stderr, "json-format-cost: reading %s failed\n", argv[2]);
		return 1;
	}
	fclose(f);
	int passes = atoi(argv[3]);
	const char *dump = getenv("DECODE_COST_DUMP");
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	out_fd = dump ? open(dump, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : null_fd;
	if (out_fd < 0 || null_fd < 0) {
		fprintf(stderr, "json-format-cost: opening %s: %s\n", dump ? dump : "/dev/null", strerror(errno));
		return 1;
	}
	// A fixed offset: the digits differ from a live run's, not their count.
	boot_to_unix_ns = 1764547200LL * 1000000000LL;
	uint64_t per_pass = 0;
	for (int pass = 0; pass <= passes; pass++) {
		uint64_t before = records;
		for (size_t at = 0; at < len;) {
			if (len - at < 4) {
				fprintf(stderr, "json-format-cost: %s: a length cut short at byte %zu\n", argv[2], at);
				return 1;
			}
			uint32_t n = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16 | (uint32_t)buf[at + 3] << 24;
			if (n > len - at - 4) {
				fprintf(stderr, "json-format-cost: %s: a record cut short at byte %zu\n", argv[2], at);
				return 1;
			}
			on_record(NULL, buf + at + 4, n);
			at += 4 + n;
		}
		per_pass = records - before;
		if (pass == 0 && out_fd != null_fd) {
			flush_out();
			close(out_fd);
			out_fd = null_fd;
		}
	}
	flush_out();
	printf("%llu %d\n", (unsigned long long)per_pass, passes);
	return 0;
}
