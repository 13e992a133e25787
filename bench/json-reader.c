// SPDX-License-Identifier: Apache-2.0
// The "C reader, same JSON" column of `make bench` (scripts/bench.py): the
// trace_open object loaded and attached by libbpf, its ring drained with
// libbpf's ring_buffer API, and for every record the JSON line gadgetd
// writes for it, written to stdout. What a plain C consumer spends per event
// to produce the agent's output is the reference for the agent's CPU goal.
//
// Usage: json-reader OBJECT TARG_PID EVENTS
//
// Loads OBJECT (a gadgets/trace_open build) with `targ_pid` = TARG_PID,
// attaches its programs, prints `ready` on stderr, then drains the ring as
// the agent's reader does (edge-triggered epoll on the ring; after a drain
// that found records, a 5 ms pause unless the ring is a quarter full; a
// 250 ms safety tick) until records plus kernel losses reach EVENTS or stdin
// closes. Output: one JSON object per record on stdout, written a drain at
// a time (at most 256 KiB per write), with the keys, order and value texts
// of `gadgetctl run trace_open -o json`: RFC 3339 timestamp, strings escaped
// as the agent escapes kernel bytes (`\xNN` for bytes that are not UTF-8),
// user and group names (getpwuid/getgrgid, the last id remembered), errno
// names, open(2) flags and `ls -l` modes. The container fields are written
// empty: the agent looks the mount namespace up in its container index, this
// reader has none. Last line, on stderr: `RECORDS LOST CPU_SECONDS` (lost:
// the gadget's per-CPU `events_lost_samples` sum; CPU: user + system).
//
// The formatting is in bench/json-format.h (shared with json-format-cost.c).
//
// Build: cc -O2 -o json-reader bench/json-reader.c -lbpf (libbpf-dev).
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "json-format.h"

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Sets the `const volatile` global `name` of the object's .rodata before load.
static int set_rodata(struct bpf_object *obj, const char *name, const void *val, size_t len)
{
	struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj) {
		const char *mname = bpf_map__name(map);
		size_t ml = strlen(mname);
		if (!bpf_map__is_internal(map) || ml < 7 || strcmp(mname + ml - 7, ".rodata"))
			continue;
		int sec = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
		if (sec < 0)
			return -ENOENT;
		const struct btf_type *t = btf__type_by_id(btf, sec);
		const struct btf_var_secinfo *v = btf_var_secinfos(t);
		for (int i = 0; i < btf_vlen(t); i++, v++) {
			const struct btf_type *var = btf__type_by_id(btf, v->type);
			if (strcmp(btf__name_by_offset(btf, var->name_off), name))
				continue;
			if (v->size != len)
				return -EINVAL;
			size_t size;
			const char *now = bpf_map__initial_value(map, &size);
			if (!now || v->offset + len > size)
				return -EINVAL;
			char *data = malloc(size);
			if (!data)
				return -ENOMEM;
			memcpy(data, now, size);
			memcpy(data + v->offset, val, len);
			int err = bpf_map__set_initial_value(map, data, size);
			free(data);
			return err;
		}
	}
	return -ENOENT;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s OBJECT TARG_PID EVENTS\n", argv[0]);
		return 2;
	}
	uint32_t pid = strtoul(argv[2], NULL, 10);
	uint64_t events = strtoull(argv[3], NULL, 10);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "json-reader: opening %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int err = set_rodata(obj, "targ_pid", &pid, sizeof(pid));
	if (err) {
		fprintf(stderr, "json-reader: setting targ_pid in %s: %s\n", argv[1], strerror(-err));
		return 1;
	}
	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "json-reader: loading %s: %s\n", argv[1], strerror(-err));
		return 1;
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "json-reader: attaching %s: %s\n", bpf_program__name(prog), strerror(errno));
			return 1;
		}
	}
	struct bpf_map *ring = bpf_object__find_map_by_name(obj, "events");
	struct bpf_map *lost_map = bpf_object__find_map_by_name(obj, "events_lost_samples");
	if (!ring || !lost_map) {
		fprintf(stderr, "json-reader: %s has no `events` ring or `events_lost_samples` map "
				"(is it gadgets/trace_open?)\n", argv[1]);
		return 1;
	}
	int ring_fd = bpf_map__fd(ring);
	uint64_t urgent = bpf_map__max_entries(ring) / 4;
	struct ring_buffer *rb = ring_buffer__new(ring_fd, on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "json-reader: ring_buffer__new: %s\n", strerror(errno));
		return 1;
	}
	// The ring's consumer and producer positions (its first two pages), read
	// to tell how full it is while paused, as the agent does (ring_fill.rs).
	long page = sysconf(_SC_PAGESIZE);
	const volatile uint64_t *cons = mmap(NULL, page, PROT_READ, MAP_SHARED, ring_fd, 0);
	const volatile uint64_t *prod = mmap(NULL, page, PROT_READ, MAP_SHARED, ring_fd, page);
	if (cons == MAP_FAILED || prod == MAP_FAILED) {
		fprintf(stderr, "json-reader: mapping the ring's positions: %s\n", strerror(errno));
		return 1;
	}
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *lost_vals = calloc(ncpu, sizeof(uint64_t));
	uint64_t lost = 0;
	boot_to_unix_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME);

	// Edge-triggered, as tokio registers the agent's rings: one event per
	// kernel wake-up (libbpf's own epoll is level-triggered, which would spin
	// during the pause while records wait).
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 1};
	struct epoll_event in = {.events = EPOLLIN, .data.u64 = 0};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ring_fd, &ev) || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in)) {
		fprintf(stderr, "json-reader: epoll: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "ready\n");
	int64_t paused_until = 0;
	struct epoll_event woken[2];
	while (records + lost < events) {
		int timeout = 250;
		if (paused_until) {
			int64_t left = paused_until - clock_ns(CLOCK_MONOTONIC);
			timeout = left > 0 ? (int)((left + 999999) / 1000000) : 0;
		}
		int n = epoll_wait(ep, woken, 2, timeout);
		if (n < 0 && errno != EINTR) {
			perror("json-reader: epoll_wait");
			return 1;
		}
		int stop = 0;
		for (int i = 0; i < n; i++)
			stop |= woken[i].data.u64 == 0;
		if (paused_until) {
			if (!stop && clock_ns(CLOCK_MONOTONIC) < paused_until && *prod - *cons < urgent)
				continue;
			paused_until = 0;
		}
		int got = ring_buffer__consume(rb);
		if (got < 0) {
			fprintf(stderr, "json-reader: ring_buffer__consume: %s\n", strerror(-got));
			return 1;
		}
		flush_out();
		uint32_t zero = 0;
		if (!bpf_map_lookup_elem(bpf_map__fd(lost_map), &zero, lost_vals)) {
			lost = 0;
			for (int i = 0; i < ncpu; i++)
				lost += lost_vals[i];
		}
		if (stop)
			break;
		if (got > 0)
			paused_until = clock_ns(CLOCK_MONOTONIC) + 5000000;
	}
	fprintf(stderr, "%llu %llu %.3f\n", (unsigned long long)records, (unsigned long long)lost, cpu_seconds());
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
