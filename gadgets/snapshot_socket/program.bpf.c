// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot_socket: TCP and UDP sockets of each network namespace, from
 * socket iterators. One data source, `sockets`, the union of the rows of
 * both iterators; the agent tags each row with the namespace it iterated
 * (netns_id). Sockets carry no process: the process filters (--pid,
 * --comm, ...) drop every row.
 */
/* arm64's vmlinux.h has an unrelated enumerator CLOSE (enum fsl_mc_cmd_index):
 * renamed while it is included, so the state names below can be the usual ones. */
#define CLOSE vmlinux_CLOSE
#include <vmlinux.h>
#undef CLOSE
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10

enum sock_proto { TCP = 6, UDP = 17 };

/* Socket states as the kernel numbers them (include/net/tcp_states.h). */
enum sock_state {
	ESTABLISHED = 1, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT,
	CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV,
};

struct socket_row {
	enum sock_proto proto;
	enum sock_state state;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	__u64 inode;
};

GADGET_ITER(sockets, socket_row, ig_snap_tcp, ig_snap_udp);

static __always_inline int write_row(struct seq_file *seq, struct sock_common *skc,
				     enum sock_proto proto, __u64 inode)
{
	struct socket_row row = {};
	__u16 family = BPF_CORE_READ(skc, skc_family);

	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (gadget_should_discard_unattributed())
		return 0;
	row.proto = proto;
	row.state = BPF_CORE_READ(skc, skc_state);
	row.src.port = BPF_CORE_READ(skc, skc_num);
	row.dst.port = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	row.src.proto_raw = row.dst.proto_raw = proto;
	if (family == AF_INET) {
		row.src.addr_raw.v4 = BPF_CORE_READ(skc, skc_rcv_saddr);
		row.dst.addr_raw.v4 = BPF_CORE_READ(skc, skc_daddr);
		row.src.version = row.dst.version = 4;
	} else {
		BPF_CORE_READ_INTO(&row.src.addr_raw.v6, skc, skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&row.dst.addr_raw.v6, skc, skc_v6_daddr.in6_u.u6_addr8);
		row.src.version = row.dst.version = 6;
	}
	row.inode = inode;
	bpf_seq_write(seq, &row, sizeof(row));
	return 0;
}

SEC("iter/tcp")
int ig_snap_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	__u64 inode = 0;

	if (!skc)
		return 0;
	/* Full sockets have an inode; request and time-wait sockets do not. */
	if (BPF_CORE_READ(skc, skc_state) != TIME_WAIT &&
	    BPF_CORE_READ(skc, skc_state) != NEW_SYN_RECV) {
		struct sock *sk = (struct sock *)skc;

		inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	}
	return write_row(ctx->meta->seq, skc, TCP, inode);
}

SEC("iter/udp")
int ig_snap_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sock *sk;

	if (!udp)
		return 0;
	sk = (struct sock *)udp;
	return write_row(ctx->meta->seq, &sk->__sk_common, UDP,
			 BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino));
}

char LICENSE[] SEC("license") = "GPL";
