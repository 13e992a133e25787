// SPDX-License-Identifier: GPL-2.0
/*
 * gadgetd's socket enricher: keeps the map gadget_sockets (the one
 * <gadget/sockets-map.h> looks sockets up in) current without kprobes.
 *
 *   cgroup/sock_create      owner (the creating task) into the socket's sk_storage
 *   cgroup/post_bind4/6     explicit bind: the local port is known, publish
 *   cgroup_skb/egress       first packet after an implicit bind (connect,
 *                           sendto): publish the port the kernel picked
 *   cgroup/sock_release     unpublish (only the entry of this very socket)
 *   iter/task_file          sweep at start: sockets that existed before
 *
 * All cgroup programs attach to the root of the cgroup v2 hierarchy, so
 * they see every socket of the host. docs/enrichment.md has the design and
 * what it misses.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define SE_AF_INET 2
#define SE_AF_INET6 10
#define SE_IPPROTO_TCP 6
#define SE_IPPROTO_UDP 17
#define SE_COMM_LEN 16
#define SE_MAX_SOCKETS 16384

/* The key of <gadget/sockets-map.h> (12 bytes, padding zeroed). */
struct gadget_socket_key {
	__u32 netns;
	__u16 family;
	__u8 proto;
	__u16 port;
};

/*
 * The value, without the optional fields (cwd, exepath) that
 * <gadget/types.h> declares after optional_fields_start: this struct's BTF
 * is what gadgets' CO-RE relocations against gadget_socket_value resolve
 * against, so bpf_core_field_exists(v->cwd) is false for them.
 */
struct gadget_socket_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[SE_COMM_LEN];
	char ptask[SE_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u32 ppid;
	__u32 ptid;
	char ipv6only;
};

/* Per socket: its owner and where it was published. */
struct owner {
	struct gadget_socket_value v;
	__u32 netns;
	__u16 published_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SE_MAX_SOCKETS);
	__type(key, struct gadget_socket_key);
	__type(value, struct gadget_socket_value);
} gadget_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct owner);
} gadget_socket_owners SEC(".maps");

static __always_inline int interesting(__u32 family, __u32 proto)
{
	return (family == SE_AF_INET || family == SE_AF_INET6) &&
	       (proto == SE_IPPROTO_TCP || proto == SE_IPPROTO_UDP);
}

/* The owner is the current task (process context: socket(), bind()). */
static __always_inline void owner_from_current(struct owner *o)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	o->v.pid_tgid = bpf_get_current_pid_tgid();
	o->v.uid_gid = bpf_get_current_uid_gid();
	bpf_get_current_comm(o->v.task, sizeof(o->v.task));
	o->v.mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	o->v.ppid = BPF_CORE_READ(parent, tgid);
	o->v.ptid = BPF_CORE_READ(parent, pid);
	BPF_CORE_READ_STR_INTO(&o->v.ptask, parent, comm);
	o->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

static __always_inline void publish(struct owner *o, __u16 family, __u8 proto, __u16 port)
{
	struct gadget_socket_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.netns = o->netns;
	key.family = family;
	key.proto = proto;
	key.port = port;
	bpf_map_update_elem(&gadget_sockets, &key, &o->v, BPF_ANY);
	o->published_port = port;
}

SEC("cgroup/sock_create")
int gadget_se_sock_create(struct bpf_sock *sk)
{
	struct owner *o;

	if (!interesting(sk->family, sk->protocol))
		return 1;
	o = bpf_sk_storage_get(&gadget_socket_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return 1;
	owner_from_current(o);
	o->v.sock = bpf_get_socket_cookie(sk);
	o->published_port = 0;
	return 1;
}

static __always_inline int on_bind(struct bpf_sock *sk)
{
	struct owner *o;

	if (!interesting(sk->family, sk->protocol) || !sk->src_port)
		return 1;
	o = bpf_sk_storage_get(&gadget_socket_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return 1;
	if (!o->v.pid_tgid) {
		/* Created before the enricher started: the binder owns it. */
		owner_from_current(o);
		o->v.sock = bpf_get_socket_cookie(sk);
	}
	publish(o, sk->family, sk->protocol, sk->src_port);
	return 1;
}

SEC("cgroup/post_bind4")
int gadget_se_post_bind4(struct bpf_sock *sk)
{
	return on_bind(sk);
}

SEC("cgroup/post_bind6")
int gadget_se_post_bind6(struct bpf_sock *sk)
{
	return on_bind(sk);
}

SEC("cgroup_skb/egress")
int gadget_se_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct owner *o;
	__u16 port;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	o = bpf_sk_storage_get(&gadget_socket_owners, sk, 0, 0);
	if (!o)
		return 1;
	port = sk->src_port;
	if (!port || port == o->published_port || !interesting(sk->family, sk->protocol))
		return 1;
	publish(o, sk->family, sk->protocol, port);
	return 1;
}

SEC("cgroup/sock_release")
int gadget_se_sock_release(struct bpf_sock *sk)
{
	struct gadget_socket_key key;
	struct gadget_socket_value *v;
	struct owner *o;

	/* src_port is not readable here: the port is the one we published. */
	o = bpf_sk_storage_get(&gadget_socket_owners, sk, 0, 0);
	if (!o || !o->published_port || !interesting(sk->family, sk->protocol))
		return 1;
	__builtin_memset(&key, 0, sizeof(key));
	key.netns = o->netns;
	key.family = sk->family;
	key.proto = sk->protocol;
	key.port = o->published_port;
	v = bpf_map_lookup_elem(&gadget_sockets, &key);
	/* Another socket may hold the port now (SO_REUSEPORT, a listener's children). */
	if (v && v->sock == bpf_get_socket_cookie(sk))
		bpf_map_delete_elem(&gadget_sockets, &key);
	return 1;
}

/* Sockets open before the enricher started; threads share their leader's files. */
SEC("iter/task_file")
int gadget_se_sweep(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct gadget_socket_key key;
	struct gadget_socket_value v;
	struct task_struct *parent;
	struct socket *sock;
	struct owner *o;
	struct sock *sk;
	__u16 family, proto;

	if (!task || !file || task->pid != task->tgid)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	proto = BPF_CORE_READ(sk, sk_protocol);
	__builtin_memset(&key, 0, sizeof(key));
	key.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!interesting(family, proto) || !key.port)
		return 0;
	key.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	key.family = family;
	key.proto = proto;

	__builtin_memset(&v, 0, sizeof(v));
	parent = BPF_CORE_READ(task, real_parent);
	v.pid_tgid = ((__u64)task->tgid << 32) | (__u32)task->pid;
	v.uid_gid = ((__u64)BPF_CORE_READ(task, cred, gid.val) << 32) | BPF_CORE_READ(task, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&v.task, task, comm);
	BPF_CORE_READ_STR_INTO(&v.ptask, parent, comm);
	v.mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	v.ppid = BPF_CORE_READ(parent, tgid);
	v.ptid = BPF_CORE_READ(parent, pid);
	v.ipv6only = BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only);
	v.sock = bpf_get_socket_cookie(sk);
	/* The hooks (already attached) know better than a sweep. */
	if (bpf_map_update_elem(&gadget_sockets, &key, &v, BPF_NOEXIST))
		return 0;
	/* So that sock_release unpublishes it and egress does not republish it. */
	o = bpf_sk_storage_get(&gadget_socket_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o && !o->v.pid_tgid) {
		o->v = v;
		o->netns = key.netns;
		o->published_port = key.port;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
