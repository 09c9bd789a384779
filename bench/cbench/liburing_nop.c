// liburing_nop: the C reference for uring.BenchmarkNop. Batches of 32 NOPs,
// one io_uring_submit_and_wait per batch; prints ns per NOP.
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
	long total = argc > 1 ? atol(argv[1]) : 20000000;
	const int batch = 32;
	struct io_uring ring;
	if (io_uring_queue_init(batch, &ring, 0) < 0) {
		perror("io_uring_queue_init");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long done = 0; done < total; done += batch) {
		for (int i = 0; i < batch; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_nop(sqe);
			sqe->user_data = i;
		}
		io_uring_submit_and_wait(&ring, batch);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) { n++; }
		io_uring_cq_advance(&ring, n);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	printf("liburing NOP batch=%d: %.1f ns/op\n", batch, ns / total);
	io_uring_queue_exit(&ring);
	return 0;
}
