// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: an iter/bpf_map_elem program walking the map its
 * GADGET_ITER_TARGET_MAP names. The iterator's first program (iter/task)
 * puts targ_count elements in the map when it meets task targ_pid:
 * id -> (id * id, targ_pid); the element iterator writes one row per element.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/types.h>

struct elem_key {
	__u32 id;
};

struct elem_value {
	__u64 square;
	__u32 pid;
	__u32 unused;
};

struct square_row {
	__u32 id;
	__u32 pid;
	__u64 square;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct elem_key);
	__type(value, struct elem_value);
} squares SEC(".maps");

const volatile pid_t targ_pid = 0;
const volatile __u32 targ_count = 0;

GADGET_PARAM(targ_pid);
GADGET_PARAM(targ_count);

GADGET_ITER(squares, square_row, fill_squares, dump_squares);
GADGET_ITER_TARGET_MAP(dump_squares, squares);

SEC("iter/task")
int fill_squares(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct elem_key key;
	struct elem_value value = {};

	if (!task || task->pid != targ_pid)
		return 0;
	for (__u32 id = 1; id <= 16 && id <= targ_count; id++) {
		key.id = id;
		value.square = (__u64)id * id;
		value.pid = task->tgid;
		bpf_map_update_elem(&squares, &key, &value, BPF_ANY);
	}
	return 0;
}

SEC("iter/bpf_map_elem")
int dump_squares(struct bpf_iter__bpf_map_elem *ctx)
{
	struct elem_key *key = ctx->key;
	struct elem_value *value = ctx->value;
	struct square_row row;

	if (!key || !value)
		return 0;
	row.id = key->id;
	row.pid = value->pid;
	row.square = value->square;
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
