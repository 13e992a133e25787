// SPDX-License-Identifier: GPL-2.0
/*
 * top_blockio: block I/O per process and device, from the block request
 * tracepoints (no kprobes needed). One data source, `io`: a map iterator,
 * read and cleared every interval.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

enum rw { READ = 0, WRITE = 1 };

/* The key: which process, which device, which direction. */
struct io_key {
	gadget_pid pid;
	__u32 major;
	__u32 minor;
	enum rw rw;
	gadget_mntns_id mntns_id;
	gadget_comm comm[TASK_COMM_LEN];
};

/* The value: requests, bytes and microseconds this interval. */
struct io_stat {
	__u64 ios;
	__u64 bytes;
	__u64 us;
};

/* A request in flight, and who issued it. */
struct request_id {
	__u64 dev;
	__u64 sector;
};

struct start_t {
	__u64 ts;
	struct io_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct request_id);
	__type(value, struct start_t);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct io_key);
	__type(value, struct io_stat);
} stats SEC(".maps");

GADGET_MAPITER(io, stats);

/* Attributed to the task that issues the request (O_DIRECT and sync reads run
 * in the caller; buffered writeback shows up as the flusher thread). */
SEC("tracepoint/block/block_rq_issue")
int ig_topio_issue(struct trace_event_raw_block_rq *ctx)
{
	struct request_id id = { .dev = ctx->dev, .sector = ctx->sector };
	struct start_t s;
	char rwbs0;

	if (gadget_should_discard_data_current())
		return 0;
	__builtin_memset(&s, 0, sizeof(s));
	s.key.mntns_id = gadget_get_current_mntns_id();
	s.ts = bpf_ktime_get_ns();
	s.key.pid = bpf_get_current_pid_tgid() >> 32;
	s.key.major = ctx->dev >> 20;
	s.key.minor = ctx->dev & ((1 << 20) - 1);
	bpf_probe_read_kernel(&rwbs0, 1, ctx->rwbs);
	/* rwbs starts with F (flush) before W for FUA/preflush writes. */
	s.key.rw = (rwbs0 == 'W' || rwbs0 == 'F') ? WRITE : READ;
	bpf_get_current_comm(&s.key.comm, sizeof(s.key.comm));
	bpf_map_update_elem(&start, &id, &s, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int ig_topio_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	struct request_id id = { .dev = ctx->dev, .sector = ctx->sector };
	struct start_t *s = bpf_map_lookup_elem(&start, &id);
	struct io_stat zero = {}, *stat;
	__u64 us;

	if (!s)
		return 0;
	us = (bpf_ktime_get_ns() - s->ts) / 1000;
	stat = bpf_map_lookup_elem(&stats, &s->key);
	if (!stat) {
		bpf_map_update_elem(&stats, &s->key, &zero, BPF_NOEXIST);
		stat = bpf_map_lookup_elem(&stats, &s->key);
	}
	if (stat) {
		__sync_fetch_and_add(&stat->ios, 1);
		__sync_fetch_and_add(&stat->bytes, (__u64)ctx->nr_sector * 512);
		__sync_fetch_and_add(&stat->us, us);
	}
	bpf_map_delete_elem(&start, &id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
