// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: an iter/bpf_map_elem program that reads 16 bytes of each
 * value of a map whose values have 4: the kernel refuses the iterator link,
 * and the error names the map.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/types.h>

struct big_value {
	__u64 a;
	__u64 b;
};

struct small_row {
	__u64 a;
	__u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} small SEC(".maps");

GADGET_ITER(too_big, small_row, read_too_much);
GADGET_ITER_TARGET_MAP(read_too_much, small);

SEC("iter/bpf_map_elem")
int read_too_much(struct bpf_iter__bpf_map_elem *ctx)
{
	struct big_value *value = ctx->value;
	struct small_row row;

	if (!value)
		return 0;
	row.a = value->a;
	row.b = value->b;
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
