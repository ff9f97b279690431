/* hyperscan_floor: the keyword scan of engine/scan/benches/corpus.rs in C, calling libhs directly,
 * to tell hyperscan's own speed on this machine from any cost of our Rust wrapper.
 *
 *   MXGUARD_BENCH_DUMP=DIR cargo bench -p mxguard-scan --bench corpus -- LIST --passes 1
 *   cc -O2 -o target/hyperscan_floor benches/hyperscan_floor.c -lhs
 *   target/hyperscan_floor DIR/decoded.txt DIR/keywords.txt [N]
 *
 * Compiles the first N lines (all by default) of the keyword file as caseless, single-match
 * literals into one block-mode database, scans the text 20 times and prints the best pass in GB
 * per CPU-second of this process. Reads its inputs whole into memory; exits 1 on any error. */
#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long long hits;

static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *ctx) {
    (void)id; (void)from; (void)to; (void)flags; (void)ctx;
    hits++;
    return 0;
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    if (fseek(f, 0, SEEK_END) != 0) { perror(path); exit(1); }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { perror(path); exit(1); }
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: read failed\n", path); exit(1); }
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TEXT KEYWORDS [N]\n", argv[0]);
        return 1;
    }
    size_t text_len, kw_len;
    char *text = slurp(argv[1], &text_len);
    char *kw = slurp(argv[2], &kw_len);
    unsigned max = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : ~0u;

    unsigned n = 0, cap = 1024;
    const char **pats = malloc(cap * sizeof *pats);
    size_t *lens = malloc(cap * sizeof *lens);
    for (char *line = strtok(kw, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        if (n == cap) {
            cap *= 2;
            pats = realloc(pats, cap * sizeof *pats);
            lens = realloc(lens, cap * sizeof *lens);
        }
        pats[n] = line;
        lens[n] = strlen(line);
        n++;
    }
    unsigned *flags = malloc(n * sizeof *flags), *ids = malloc(n * sizeof *ids);
    for (unsigned i = 0; i < n; i++) {
        flags[i] = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
        ids[i] = i;
    }

    hs_database_t *db;
    hs_compile_error_t *err;
    if (hs_compile_lit_multi(pats, flags, ids, lens, n, HS_MODE_BLOCK, NULL, &db, &err) != HS_SUCCESS) {
        fprintf(stderr, "compile: %s\n", err->message);
        return 1;
    }
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
        fprintf(stderr, "scratch allocation failed\n");
        return 1;
    }
    size_t db_size = 0;
    hs_database_size(db, &db_size);

    double best = 1e30;
    for (int pass = 0; pass < 20; pass++) {
        double t0 = cpu_now();
        if (hs_scan(db, text, (unsigned)text_len, 0, scratch, on_match, NULL) != HS_SUCCESS) {
            fprintf(stderr, "scan failed\n");
            return 1;
        }
        double t = cpu_now() - t0;
        if (t < best) best = t;
    }
    printf("{\"keywords\":%u,\"db_bytes\":%zu,\"text_bytes\":%zu,\"matches_20_passes\":%llu,\"gb_per_cpu_s\":%.3f}\n",
           n, db_size, text_len, hits, (double)text_len / 1e9 / best);
    return 0;
}
