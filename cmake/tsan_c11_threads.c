/*
 * ThreadSanitizer builds only. Debian's librdkafka runs its threads through
 * glibc's C11 <threads.h> (thrd_create, mtx_lock, cnd_wait, ...). GCC 12's
 * TSan runtime intercepts the pthread functions but not these C11 wrappers,
 * which call glibc internals directly: librdkafka's threads then start
 * unknown to TSan and the process crashes at the first report, and every
 * lock librdkafka takes would be invisible (false races).
 *
 * This shared library, linked ahead of libc into every TSan executable,
 * interposes the C11 functions librdkafka imports and forwards them to the
 * pthread functions TSan does intercept. glibc's mtx_t and cnd_t have the
 * size and layout of pthread_mutex_t and pthread_cond_t (glibc implements the
 * C11 functions on them), so the casts are exact. Never linked outside TSan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a pthread_cond_t");
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is a pthread_t");

static int to_thrd(int err) {
    switch (err) {
        case 0: return thrd_success;
        case ENOMEM: return thrd_nomem;
        case EBUSY: return thrd_busy;
        case ETIMEDOUT: return thrd_timedout;
        default: return thrd_error;
    }
}

struct start {
    thrd_start_t func;
    void* arg;
};

static void* trampoline(void* p) {
    struct start s = *(struct start*)p;
    free(p);
    return (void*)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
    struct start* s = malloc(sizeof *s);
    if (s == NULL) return thrd_nomem;
    s->func = func;
    s->arg = arg;
    int err = pthread_create((pthread_t*)thr, NULL, trampoline, s);
    if (err != 0) free(s);
    return to_thrd(err);
}

int thrd_join(thrd_t thr, int* res) {
    void* out = NULL;
    int err = pthread_join((pthread_t)thr, &out);
    if (err == 0 && res != NULL) *res = (int)(intptr_t)out;
    return to_thrd(err);
}

int thrd_detach(thrd_t thr) { return to_thrd(pthread_detach((pthread_t)thr)); }
thrd_t thrd_current(void) { return (thrd_t)pthread_self(); }
int thrd_equal(thrd_t a, thrd_t b) { return pthread_equal((pthread_t)a, (pthread_t)b); }

int mtx_init(mtx_t* m, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    int err = pthread_mutex_init((pthread_mutex_t*)m, &attr);
    pthread_mutexattr_destroy(&attr);
    return to_thrd(err);
}
int mtx_lock(mtx_t* m) { return to_thrd(pthread_mutex_lock((pthread_mutex_t*)m)); }
int mtx_trylock(mtx_t* m) { return to_thrd(pthread_mutex_trylock((pthread_mutex_t*)m)); }
int mtx_timedlock(mtx_t* restrict m, const struct timespec* restrict t) {
    return to_thrd(pthread_mutex_timedlock((pthread_mutex_t*)m, t));
}
int mtx_unlock(mtx_t* m) { return to_thrd(pthread_mutex_unlock((pthread_mutex_t*)m)); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy((pthread_mutex_t*)m); }

int cnd_init(cnd_t* c) { return to_thrd(pthread_cond_init((pthread_cond_t*)c, NULL)); }
int cnd_signal(cnd_t* c) { return to_thrd(pthread_cond_signal((pthread_cond_t*)c)); }
int cnd_broadcast(cnd_t* c) { return to_thrd(pthread_cond_broadcast((pthread_cond_t*)c)); }
int cnd_wait(cnd_t* c, mtx_t* m) {
    return to_thrd(pthread_cond_wait((pthread_cond_t*)c, (pthread_mutex_t*)m));
}
int cnd_timedwait(cnd_t* restrict c, mtx_t* restrict m, const struct timespec* restrict t) {
    return to_thrd(pthread_cond_timedwait((pthread_cond_t*)c, (pthread_mutex_t*)m, t));
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy((pthread_cond_t*)c); }

void call_once(once_flag* flag, void (*func)(void)) { pthread_once((pthread_once_t*)flag, func); }
