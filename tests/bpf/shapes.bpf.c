// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: integer and enum shapes decoded from BTF. Enums of 1, 2 and 4
 * bytes, signed and unsigned, negative values and values with no name;
 * `float` and `double` (stored as their bit patterns: 0.1f, 1/3f, 0.1);
 * `__int128` and `unsigned __int128`; an array of structs; zero-length arrays.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>
#include <gadget/buffer.h>

enum __attribute__((packed)) one_byte { ONE_A = 1, ONE_B = 200 };
enum __attribute__((packed)) two_signed { TWO_NEG = -2, TWO_POS = 300 };
enum four_unsigned { FOUR_X = 1, FOUR_Y = 3 };

struct pair {
	__u16 a;
	__u8 b;
};

struct event {
	__u32 pid;
	__u32 none[0];
	float f;
	float third;
	double d;
	enum four_unsigned four_unnamed;
	enum two_signed two;
	enum two_signed two_unnamed;
	enum one_byte one;
	enum one_byte one_unnamed;
	struct pair pairs[2];
	unsigned __int128 big;
	__int128 big_neg;
	char rest[0];
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int shapes_getcwd(void *ctx)
{
	__u32 f_bits = 0x3dcccccd, third_bits = 0x3eaaaaab;
	__u64 d_bits = 0x3fb999999999999aULL;
	struct event *ev;

	if (targ_pid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->pid = targ_pid;
	__builtin_memcpy(&ev->f, &f_bits, 4);
	__builtin_memcpy(&ev->third, &third_bits, 4);
	__builtin_memcpy(&ev->d, &d_bits, 8);
	ev->four_unnamed = (enum four_unsigned)0xfffffff0u;
	ev->two = TWO_NEG;
	ev->two_unnamed = (enum two_signed)-5;
	ev->one = ONE_B;
	ev->one_unnamed = (enum one_byte)7;
	ev->pairs[0].a = 1;
	ev->pairs[0].b = 2;
	ev->pairs[1].a = 300;
	ev->pairs[1].b = 4;
	/* 2^100 and -(2^70), as little-endian 64-bit halves */
	__u64 big[2] = { 0, 1ULL << 36 }, big_neg[2] = { 0, 0xffffffffffffffc0ULL };
	__builtin_memcpy(&ev->big, big, 16);
	__builtin_memcpy(&ev->big_neg, big_neg, 16);
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
