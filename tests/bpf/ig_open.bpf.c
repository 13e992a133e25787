// SPDX-License-Identifier: GPL-2.0
/*
 * Inspektor Gadget's conventions in one object (tests/tests/ig_conventions.rs):
 * two data sources (a tracer and a map iterator), GADGET_PARAM with a key
 * renamed by ig_open.yaml, the common filters of gadget/filter.h, and
 * .rodata that is data, not parameters (a static table, an unmarked const
 * volatile array, an empty-event template).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filesystem.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_errno error_raw;
	__u32 fd;
	gadget_file_flags flags_raw;
	gadget_file_mode mode_raw;
	__u32 kind; /* an index into kinds[] below */
	char fname[NAME_MAX];
	char fpath[GADGET_PATH_MAX]; /* with --paths: the opened file's full path */
};

struct comm_key {
	gadget_comm comm[TASK_COMM_LEN];
};

struct comm_stats {
	gadget_counter__u64 opens;
	gadget_counter__u64 failures;
};

/* Only failed opens (flag renamed to --failed by ig_open.yaml). */
const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

/* Resolve the full path of opened files (gadget/filesystem.h). */
const volatile bool paths = false;
GADGET_PARAM(paths);

/* Not marked: data, never a parameter. */
const volatile __u32 internal_weights[4] = { 1, 2, 3, 4 };
static const char kinds[4][8] = { "none", "plain", "creat", "trunc" };
const struct event empty_event = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct event);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct comm_key);
	__type(value, struct comm_stats);
} opens_by_comm SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(open, events, event);
GADGET_MAPITER(opens, opens_by_comm);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_test_openat_e(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event *e;
	int flags;

	if (gadget_should_discard_data_current())
		return 0;
	/* Start from the template, a .rodata global. */
	if (bpf_map_update_elem(&start, &id, &empty_event, BPF_ANY))
		return 0;
	e = bpf_map_lookup_elem(&start, &id);
	if (!e)
		return 0;
	flags = (int)ctx->args[2];
	e->flags_raw = flags;
	e->mode_raw = (__u32)ctx->args[3] * internal_weights[0];
	e->kind = (flags & 01000) ? 3 : (flags & 0100) ? 2 : 1; /* O_TRUNC, O_CREAT */
	bpf_probe_read_user_str(e->fname, sizeof(e->fname), (const char *)ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int ig_test_openat_x(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct comm_stats zero = {}, *stats;
	struct comm_key key = {};
	struct event *pending, *e;
	long ret = ctx->ret;

	pending = bpf_map_lookup_elem(&start, &id);
	if (!pending)
		return 0;

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	bpf_map_update_elem(&opens_by_comm, &key, &zero, BPF_NOEXIST);
	stats = bpf_map_lookup_elem(&opens_by_comm, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->opens, 1);
		if (ret < 0)
			__sync_fetch_and_add(&stats->failures, 1);
	}

	if (targ_failed && ret >= 0)
		goto out;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		goto out;
	__builtin_memcpy(e, pending, sizeof(*e));
	gadget_process_populate(&e->proc);
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->fd = ret >= 0 ? ret : 0;
	e->error_raw = ret >= 0 ? 0 : -ret;
	if (paths && ret >= 0 &&
	    read_full_path_of_open_file_fd(ret, e->fpath, sizeof(e->fpath)) <= 0)
		e->fpath[0] = '\0';
	/* Uses the static table, so it stays in .rodata. */
	if (e->kind < 4 && kinds[e->kind][0] == 'c')
		e->mode_raw |= 0;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
out:
	bpf_map_delete_elem(&start, &id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
