// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: every kind of 1-byte array is a string. `char` (which clang
 * encodes as a signed 1-byte INT), `signed char`, `unsigned char`, `__u8`,
 * `__s8`, and a typedef of char[16] (`gadget_comm`); one full array with no
 * NUL and one with bytes that are not UTF-8.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	char comm[16];
	gadget_comm tcomm;
	signed char s_char[8];
	unsigned char u_char[8];
	__u8 u8s[8];
	__s8 s8s[8];
	/* "full": no NUL */
	char full[4];
	/* 0xff 'a' '\\' 0xc3 */
	char raw[4];
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int strings_getcwd(void *ctx)
{
	struct event *ev;

	if (targ_pid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->pid = targ_pid;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_get_current_comm(ev->tcomm, sizeof(ev->tcomm));
	__builtin_memcpy(ev->s_char, "signed", 6);
	__builtin_memcpy(ev->u_char, "unsig", 5);
	__builtin_memcpy(ev->u8s, "u8", 2);
	__builtin_memcpy(ev->s8s, "s8", 2);
	__builtin_memcpy(ev->full, "full", 4);
	ev->raw[0] = (char)0xff;
	ev->raw[1] = 'a';
	ev->raw[2] = '\\';
	ev->raw[3] = (char)0xc3;
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
