//go:build cgo

// Package lmdb is a minimal binding to the LMDB C library (liblmdb), just
// what the comparison needs: open an environment, point reads, batched
// writes. It loads liblmdb.so.0 at run time with dlopen, so the package
// builds without LMDB's headers and a missing library is an error from
// Available or Open, never a build failure. It needs cgo and a C compiler.
//
// No maintained Go binding (PowerDNS/lmdb-go, bmatsuo/lmdb-go and its
// forks) could be fetched from the module proxy when this was written,
// hence this small one.
package lmdb

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct { size_t mv_size; void *mv_data; } whyc_val;
typedef unsigned int whyc_dbi;

#define WHYC_NOSUBDIR 0x4000
#define WHYC_RDONLY   0x20000
#define WHYC_NOSYNC   0x10000
#define WHYC_NOTLS    0x200000
#define WHYC_NOTFOUND (-30798)

static void *whyc_lib;
static int (*p_env_create)(void **);
static int (*p_env_set_mapsize)(void *, size_t);
static int (*p_env_set_maxreaders)(void *, unsigned int);
static int (*p_env_open)(void *, const char *, unsigned int, unsigned int);
static void (*p_env_close)(void *);
static int (*p_txn_begin)(void *, void *, unsigned int, void **);
static int (*p_txn_commit)(void *);
static void (*p_txn_abort)(void *);
static void (*p_txn_reset)(void *);
static int (*p_txn_renew)(void *);
static int (*p_dbi_open)(void *, const char *, unsigned int, whyc_dbi *);
static int (*p_get)(void *, whyc_dbi, whyc_val *, whyc_val *);
static int (*p_put)(void *, whyc_dbi, whyc_val *, whyc_val *, unsigned int);
static char *(*p_strerror)(int);
static char *(*p_version)(int *, int *, int *);

#define WHYC_SYM(var, name) \
	if (!(*(void **)(&var) = dlsym(h, name))) { const char *e = dlerror(); dlclose(h); return e; }

// whyc_load opens liblmdb and resolves the functions; it returns NULL or
// the dlerror text. Called once (Go side guards it).
static const char *whyc_load(void) {
	void *h = dlopen("liblmdb.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) h = dlopen("liblmdb.so", RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
	WHYC_SYM(p_env_create, "mdb_env_create");
	WHYC_SYM(p_env_set_mapsize, "mdb_env_set_mapsize");
	WHYC_SYM(p_env_set_maxreaders, "mdb_env_set_maxreaders");
	WHYC_SYM(p_env_open, "mdb_env_open");
	WHYC_SYM(p_env_close, "mdb_env_close");
	WHYC_SYM(p_txn_begin, "mdb_txn_begin");
	WHYC_SYM(p_txn_commit, "mdb_txn_commit");
	WHYC_SYM(p_txn_abort, "mdb_txn_abort");
	WHYC_SYM(p_txn_reset, "mdb_txn_reset");
	WHYC_SYM(p_txn_renew, "mdb_txn_renew");
	WHYC_SYM(p_dbi_open, "mdb_dbi_open");
	WHYC_SYM(p_get, "mdb_get");
	WHYC_SYM(p_put, "mdb_put");
	WHYC_SYM(p_strerror, "mdb_strerror");
	WHYC_SYM(p_version, "mdb_version");
	whyc_lib = h;
	return NULL;
}

static const char *whyc_strerror(int rc) { return p_strerror(rc); }
static const char *whyc_version(void) { return p_version(NULL, NULL, NULL); }

// whyc_open creates and opens an environment at path (a single file) and
// its main database, and parks a read transaction for whyc_get.
static int whyc_open(const char *path, size_t mapsize, int rdonly, int nosync,
                     void **envp, whyc_dbi *dbi, void **rtxn) {
	void *env = NULL, *txn = NULL;
	int rc = p_env_create(&env);
	if (rc) return rc;
	unsigned int flags = WHYC_NOSUBDIR | WHYC_NOTLS;
	if (rdonly) flags |= WHYC_RDONLY;
	if (nosync) flags |= WHYC_NOSYNC;
	if ((rc = p_env_set_mapsize(env, mapsize)) ||
	    (rc = p_env_set_maxreaders(env, 126)) ||
	    (rc = p_env_open(env, path, flags, 0644)) ||
	    (rc = p_txn_begin(env, NULL, rdonly ? WHYC_RDONLY : 0, &txn)) ||
	    (rc = p_dbi_open(txn, NULL, 0, dbi))) {
		if (txn) p_txn_abort(txn);
		p_env_close(env);
		return rc;
	}
	if ((rc = p_txn_commit(txn)) || (rc = p_txn_begin(env, NULL, WHYC_RDONLY, rtxn))) {
		p_env_close(env);
		return rc;
	}
	p_txn_reset(*rtxn);
	*envp = env;
	return 0;
}

static void whyc_close(void *env, void *rtxn) {
	p_txn_abort(rtxn);
	p_env_close(env);
}

// whyc_get renews the parked read transaction, looks key up, copies the
// value into buf when it fits in cap, and parks the transaction again: one
// C call per point read. *vlen gets the value's length.
static int whyc_get(void *rtxn, whyc_dbi dbi, const void *key, size_t klen,
                    void *buf, size_t cap, size_t *vlen) {
	int rc = p_txn_renew(rtxn);
	if (rc) return rc;
	whyc_val k = {klen, (void *)key}, v;
	rc = p_get(rtxn, dbi, &k, &v);
	if (rc == 0) {
		*vlen = v.mv_size;
		if (v.mv_size <= cap) memcpy(buf, v.mv_data, v.mv_size);
	}
	p_txn_reset(rtxn);
	return rc;
}

// whyc_put_batch writes n items with fixed-size keys and values packed end
// to end in one write transaction (begun and committed on this thread, as
// LMDB requires).
static int whyc_put_batch(void *env, whyc_dbi dbi, const char *keys, size_t klen,
                          const char *vals, size_t vlen, size_t n) {
	void *txn;
	int rc = p_txn_begin(env, NULL, 0, &txn);
	if (rc) return rc;
	for (size_t i = 0; i < n; i++) {
		whyc_val k = {klen, (void *)(keys + i * klen)};
		whyc_val v = {vlen, (void *)(vals + i * vlen)};
		if ((rc = p_put(txn, dbi, &k, &v, 0))) {
			p_txn_abort(txn);
			return rc;
		}
	}
	return p_txn_commit(txn);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var (
	loadOnce sync.Once
	loadErr  error
)

// Available loads liblmdb on first call and reports whether it could: the
// error names the missing library and the Debian package that has it.
func Available() error {
	loadOnce.Do(func() {
		if msg := C.whyc_load(); msg != nil {
			loadErr = fmt.Errorf("%w: %s (Debian package liblmdb-dev or liblmdb0)", ErrUnavailable, C.GoString(msg))
		}
	})
	return loadErr
}

// Version returns liblmdb's version string, or "" when it is unavailable.
func Version() string {
	if Available() != nil {
		return ""
	}
	return C.GoString(C.whyc_version())
}

// Options configure Open.
type Options struct {
	// ReadOnly opens the environment with MDB_RDONLY.
	ReadOnly bool
	// MapSize is the largest the database may grow, in bytes (address
	// space, not memory); 0 means 8 GiB.
	MapSize int64
	// NoSync skips the fsync at each commit (MDB_NOSYNC).
	NoSync bool
}

// Env is an open LMDB environment (one data file plus its lock file) with
// its main database. Get must not be called concurrently with itself (it
// reuses one read transaction); PutBatch may run beside it from another
// goroutine. Close releases everything; no method may be called after it.
type Env struct {
	env  unsafe.Pointer
	rtxn unsafe.Pointer
	dbi  C.whyc_dbi
}

// Open opens or creates the environment whose data file is path (the lock
// file is path-lock). Errors wrap ErrUnavailable when liblmdb cannot be
// loaded, else carry LMDB's message.
func Open(path string, opts Options) (*Env, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.MapSize <= 0 {
		opts.MapSize = 8 << 30
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	e := &Env{}
	rc := C.whyc_open(cpath, C.size_t(opts.MapSize), cbool(opts.ReadOnly), cbool(opts.NoSync), &e.env, &e.dbi, &e.rtxn)
	if rc != 0 {
		return nil, lmdbError("open "+path, rc)
	}
	return e, nil
}

// Get appends the value of key to dst. found is false for a missing key.
func (e *Env) Get(dst, key []byte) (out []byte, found bool, err error) {
	if len(key) == 0 {
		return dst, false, errors.New("lmdb: empty key")
	}
	if cap(dst)-len(dst) < 128 {
		dst = append(dst, make([]byte, 256)...)[:len(dst)]
	}
	for {
		var vlen C.size_t
		free := dst[len(dst):cap(dst)]
		rc := C.whyc_get(e.rtxn, e.dbi, unsafe.Pointer(&key[0]), C.size_t(len(key)),
			unsafe.Pointer(&free[0]), C.size_t(len(free)), &vlen)
		switch {
		case rc == C.WHYC_NOTFOUND:
			return dst, false, nil
		case rc != 0:
			return dst, false, lmdbError("get", rc)
		case int(vlen) <= len(free):
			return dst[:len(dst)+int(vlen)], true, nil
		}
		dst = append(dst, make([]byte, int(vlen))...)[:len(dst)] // too small: grow and read again
	}
}

// PutBatch writes n = len(keys)/klen items, keys and values of klen and
// vlen bytes packed end to end, in one write transaction.
func (e *Env) PutBatch(keys []byte, klen int, vals []byte, vlen int) error {
	if klen <= 0 || vlen <= 0 || len(keys)%klen != 0 || len(vals) != len(keys)/klen*vlen {
		return fmt.Errorf("lmdb: PutBatch: %d key bytes of %d and %d value bytes of %d do not match", len(keys), klen, len(vals), vlen)
	}
	n := len(keys) / klen
	if n == 0 {
		return nil
	}
	rc := C.whyc_put_batch(e.env, e.dbi, (*C.char)(unsafe.Pointer(&keys[0])), C.size_t(klen),
		(*C.char)(unsafe.Pointer(&vals[0])), C.size_t(vlen), C.size_t(n))
	if rc != 0 {
		return lmdbError("put", rc)
	}
	return nil
}

// Close releases the environment.
func (e *Env) Close() error {
	if e.env != nil {
		C.whyc_close(e.env, e.rtxn)
		e.env, e.rtxn = nil, nil
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func lmdbError(op string, rc C.int) error {
	return fmt.Errorf("lmdb: %s: %s (%d)", op, C.GoString(C.whyc_strerror(rc)), int(rc))
}
