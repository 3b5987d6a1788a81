/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libumem-example.c: one process creates a region, maps it, and serves
 * its missing pages from a thread while the main thread reads them, the
 * way a VMM's vCPUs would.  Page i holds the byte i % 256.
 *
 *   cc -o libumem-example libumem-example.c $(pkg-config --cflags --libs libumem)
 *   ./libumem-example [umem|uffd|uffd-minor]
 */
#include <errno.h>
#include <libumem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE  4096
#define PAGES 256

static atomic_bool stop;

/* The daemon's side: read page requests, install each page. */
static void *serve(void *arg)
{
    struct umem_region *r = arg;
    struct umem_page_request req[32];
    static unsigned char page[PAGE];

    while (!atomic_load(&stop)) {
        int n = umem_region_read_requests(r, req, 32, 100);

        if (n < 0) {
            fprintf(stderr, "reading requests: %s\n", umem_strerror(n));
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            uint64_t index = req[i].offset / PAGE;
            int ret;

            memset(page, (int)(index % 256), PAGE);
            ret = umem_region_copy(r, req[i].offset, page, PAGE);
            if (ret < 0 && ret != -EEXIST) {
                fprintf(stderr, "installing page %llu: %s\n",
                        (unsigned long long)index, umem_strerror(ret));
                exit(1);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct umem_region_config cfg;
    struct umem_region_stats st;
    struct umem_region *r;
    unsigned char *ram;
    pthread_t server;
    char name[32];
    int ret, wrong = 0;

    snprintf(name, sizeof(name), "example-%d", (int)getpid());
    memset(&cfg, 0, sizeof(cfg));
    cfg.backend = argc > 1 ? argv[1] : "umem";
    cfg.name = name;
    cfg.size = (uint64_t)PAGES * PAGE;

    ret = umem_region_create(&cfg, &r);
    if (ret) {
        fprintf(stderr, "creating a %s region: %s\n", cfg.backend,
                umem_strerror(ret));
        return 1;
    }
    ret = umem_region_map(r, (void **)&ram);
    if (ret) {
        fprintf(stderr, "mapping it: %s\n", umem_strerror(ret));
        umem_region_close(r);
        return 1;
    }
    if (pthread_create(&server, NULL, serve, r)) {
        fprintf(stderr, "cannot start the server thread\n");
        umem_region_close(r);
        return 1;
    }

    /* The VMM's side: each first touch waits until the page is installed. */
    for (unsigned int p = 0; p < PAGES; p++) {
        if (ram[(uint64_t)p * PAGE] != p % 256 ||
            ram[(uint64_t)p * PAGE + PAGE - 1] != p % 256)
            wrong++;
    }

    atomic_store(&stop, true);
    pthread_join(server, NULL);
    if (umem_region_stats(r, &st) == 0)
        printf("%s region %s%s%s: %u pages read, %d wrong; "
               "%llu requests, %llu pages installed\n",
               umem_region_backend(r), name,
               umem_region_path(r) ? " at " : "",
               umem_region_path(r) ? umem_region_path(r) : "",
               PAGES, wrong, (unsigned long long)st.requests,
               (unsigned long long)st.installed);
    umem_region_close(r);
    return wrong ? 1 : 0;
}
