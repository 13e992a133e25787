/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Packet filters (tcpdump expressions) for socket and TC programs:
 *
 *   GADGET_PF(name);                                    // declares gadget_pf_<name>
 *   if (!gadget_pf_matches(name, skb, data, data_end))   // or (skb, data, data_end)
 *           return 0;
 *
 * GADGET_PF declares a stub that matches every non-empty packet; a loader
 * that compiles a filter expression replaces the stub's body (it is not
 * inlined for that reason, and takes the skb three times so that R1-R3 are
 * free for a classic-BPF program translated to eBPF). gadgetd does not
 * replace it yet: every packet matches.
 */
#ifndef __GADGET_PACKETFILTER_H
#define __GADGET_PACKETFILTER_H

#define GADGET_PF(name)                                                                        \
	static __noinline bool gadget_pf_##name(void *_skb, void *__skb, void *___skb, void *data, \
						void *data_end)                                    \
	{                                                                                      \
		return data != data_end && _skb == __skb && __skb == ___skb;                   \
	}

#define __GADGET_PF_MATCHES_3(skb, data, data_end) gadget_pf_(skb, skb, skb, data, data_end)
#define __GADGET_PF_MATCHES_4(name, skb, data, data_end) \
	gadget_pf_##name(skb, skb, skb, data, data_end)
#define __GADGET_PF_NARGS(_1, _2, _3, _4, n, ...) n
#define __GADGET_PF_PASTE2(a, b) a##b
#define __GADGET_PF_PASTE(a, b) __GADGET_PF_PASTE2(a, b)

/* gadget_pf_matches([name,] skb, data, data_end): true when the packet passes the filter. */
#define gadget_pf_matches(...)                                                              \
	__GADGET_PF_PASTE(__GADGET_PF_MATCHES_, __GADGET_PF_NARGS(__VA_ARGS__, 4, 3, 2, 1)) \
	(__VA_ARGS__)

#endif /* __GADGET_PACKETFILTER_H */
