/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Bit tricks for histograms (needs vmlinux.h's u32/u64). */
#ifndef __GADGET_BITS_BPF_H
#define __GADGET_BITS_BPF_H

/* floor(log2(v)) for v > 0, 0 for v == 0, without loops. */
static __always_inline u64 log2(u32 v)
{
	u32 r = 0, step;

	step = (v >= (1U << 16)) << 4;
	v >>= step;
	r |= step;
	step = (v >= (1U << 8)) << 3;
	v >>= step;
	r |= step;
	step = (v >= (1U << 4)) << 2;
	v >>= step;
	r |= step;
	step = (v >= (1U << 2)) << 1;
	v >>= step;
	r |= step;
	r |= v >> 1;
	return r;
}

/*
 * Inspektor Gadget's slot of `v` in a gadget_histogram_slot__* array, as IG
 * computes it (kept identical so IG gadgets count the same here): 0 for 0,
 * else floor(log2(v)) + 1. Slot n thus holds values in [2^(n-1), 2^n).
 *
 * Mind the printing: IG's histogram package, and gadgetd after it, label
 * slot n as [2^n, 2^(n+1) - 1] (slot 0 as [0, 1]), so a value counted with
 * get_slot_idx() shows one range higher than the value (IG's profile_blockio
 * does that). For printed ranges that hold the value, use log2(v) instead
 * (floor(log2(v)); 0 for 0 and 1).
 */
static __always_inline u64 get_slot_idx(u64 v)
{
	u32 high = v >> 32;

	if (!v)
		return 0;
	return high ? log2(high) + 33 : log2((u32)v) + 1;
}

#endif /* __GADGET_BITS_BPF_H */
