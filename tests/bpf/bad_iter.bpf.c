// SPDX-License-Identifier: GPL-2.0
/* An iterator over a target this kernel does not have. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>

struct row {
	__u32 x;
};

GADGET_ITER_TYPE(struct row);

SEC("iter/no_such_target")
int bad_iter(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
