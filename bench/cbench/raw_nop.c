// raw_nop: a second C reference for uring.BenchmarkNop, without liburing:
// io_uring_setup with IORING_SETUP_NO_SQARRAY (as liburing 2.5+ sets by
// default and as snapring does), batches of 32 NOPs, one io_uring_enter
// (submit 32, wait 32) per batch. Prints ns per NOP.
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

int main(int argc, char **argv) {
	long total = argc > 1 ? atol(argv[1]) : 20000000;
	const unsigned batch = 32;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_NO_SQARRAY;
	int fd = syscall(__NR_io_uring_setup, batch, &p);
	if (fd < 0) {
		perror("io_uring_setup");
		return 1;
	}
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	size_t sz = sq_sz > cq_sz ? sq_sz : cq_sz; // IORING_FEAT_SINGLE_MMAP
	char *ring = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
	struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
	if (ring == MAP_FAILED || sqes == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	_Atomic unsigned *sq_tail = (_Atomic unsigned *)(ring + p.sq_off.tail);
	unsigned sq_mask = *(unsigned *)(ring + p.sq_off.ring_mask);
	_Atomic unsigned *cq_head = (_Atomic unsigned *)(ring + p.cq_off.head);
	_Atomic unsigned *cq_tail = (_Atomic unsigned *)(ring + p.cq_off.tail);
	unsigned cq_mask = *(unsigned *)(ring + p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(ring + p.cq_off.cqes);
	unsigned tail = atomic_load_explicit(sq_tail, memory_order_relaxed);
	unsigned long long sum = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long done = 0; done < total; done += batch) {
		for (unsigned i = 0; i < batch; i++) {
			struct io_uring_sqe *s = &sqes[tail & sq_mask];
			memset(s, 0, sizeof *s);
			s->opcode = IORING_OP_NOP;
			s->user_data = i;
			tail++;
		}
		atomic_store_explicit(sq_tail, tail, memory_order_release);
		if (syscall(__NR_io_uring_enter, fd, batch, batch, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
			perror("io_uring_enter");
			return 1;
		}
		unsigned head = atomic_load_explicit(cq_head, memory_order_relaxed);
		unsigned ctail = atomic_load_explicit(cq_tail, memory_order_acquire);
		for (; head != ctail; head++)
			sum += cqes[head & cq_mask].user_data;
		atomic_store_explicit(cq_head, head, memory_order_release);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	printf("raw C NO_SQARRAY NOP batch=%u: %.1f ns/op (checksum %llu)\n", batch, ns / total, sum);
	return 0;
}
