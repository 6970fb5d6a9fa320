package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/whycache/whycache/prefixtree"
)

// The workload of the project's targets, generated exactly as the
// prefixtree benchmarks do (benchData with seed 1), so that figures are
// comparable.
const (
	keyLen       = 16
	valueLen     = 100
	loadBatch    = 1000
	workloadSeed = 1
	maxKeys      = 1 << 26
)

// Meta words of a state file built by this command.
const (
	metaMarker  = 0                  // markerValue once the workload is fully loaded
	metaKeys    = 1                  // number of workload keys
	metaLastID  = 2                  // highest record id written so far
	markerValue = 0x686362646165725f // "_readbch", little-endian
)

// workloadKeys returns the n workload keys packed end to end: key i is
// keys[i*keyLen : (i+1)*keyLen]. The bytes are those of the prefixtree
// benchmarks' keys.
func workloadKeys(n int) []byte {
	r := rand.New(rand.NewPCG(workloadSeed, workloadSeed))
	keys := make([]byte, n*keyLen)
	for i := range keys {
		keys[i] = byte(r.Uint32())
	}
	return keys
}

// key returns workload key i of keys.
func key(keys []byte, i uint64) []byte { return keys[i*keyLen : (i+1)*keyLen : (i+1)*keyLen] }

// initialValue is the value every key is loaded with.
func initialValue() []byte {
	v := make([]byte, valueLen)
	for i := range v {
		v[i] = byte(i)
	}
	return v
}

// stateInfo describes the state file the scenarios run on.
type stateInfo struct {
	Path         string  `json:"path"`
	Keys         int     `json:"keys"`
	FileBytes    int64   `json:"file_bytes"`
	Reused       bool    `json:"reused"`
	BuildSeconds float64 `json:"build_seconds,omitempty"`
}

// prepareState builds the workload in the state file (a new temporary one
// when path is empty), or checks that an existing file holds it. cleanup
// removes what prepareState created and must be called once the children
// are done; it is never nil.
func prepareState(path string, n int) (info stateInfo, cleanup func(), err error) {
	cleanup = func() {}
	if path == "" {
		dir, err := os.MkdirTemp(defaultStateDir(), "whycache-readbench-")
		if err != nil {
			return info, cleanup, fmt.Errorf("whycache-readbench: %w", err)
		}
		cleanup = func() { os.RemoveAll(dir) }
		path = filepath.Join(dir, "state")
	}
	info = stateInfo{Path: path, Keys: n}
	tr, err := prefixtree.Open(path, prefixtree.Options{})
	if err != nil {
		return info, cleanup, fmt.Errorf("whycache-readbench: %w", err)
	}
	defer tr.Close()
	if tr.Len() == 0 && tr.Meta(metaMarker) == 0 {
		start := time.Now()
		if err := load(tr, workloadKeys(n)); err != nil {
			return info, cleanup, err
		}
		info.BuildSeconds = time.Since(start).Seconds()
	} else if err := checkWorkload(tr, n); err != nil {
		return info, cleanup, err
	} else {
		info.Reused = true
	}
	info.FileBytes, err = tr.File().FileSize()
	if err != nil {
		return info, cleanup, fmt.Errorf("whycache-readbench: %w", err)
	}
	return info, cleanup, nil
}

// defaultStateDir is /dev/shm when it exists, else os.TempDir.
func defaultStateDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// load writes the workload in batches of loadBatch keys with record ids
// 1..n, and marks the file as holding it in the last batch.
func load(tr *prefixtree.Tree, keys []byte) error {
	n := len(keys) / keyLen
	value := initialValue()
	for i := 0; i < n; i += loadBatch {
		end := min(i+loadBatch, n)
		b, err := tr.Begin()
		if err != nil {
			return fmt.Errorf("whycache-readbench: load: %w", err)
		}
		err = b.Reserve(end - i)
		for j := i; j < end && err == nil; j++ {
			_, err = b.Put(key(keys, uint64(j)), value, uint64(j+1))
		}
		if err == nil && end == n {
			err = setMetas(b, markerValue, uint64(n), uint64(n))
		}
		if err != nil {
			b.Rollback()
			return fmt.Errorf("whycache-readbench: load: %w", err)
		}
		if err := b.Commit(); err != nil {
			return fmt.Errorf("whycache-readbench: load: %w", err)
		}
	}
	return nil
}

// setMetas sets the marker, key count and last id words.
func setMetas(b *prefixtree.Batch, marker, keys, lastID uint64) error {
	if err := b.SetMeta(metaMarker, marker); err != nil {
		return err
	}
	if err := b.SetMeta(metaKeys, keys); err != nil {
		return err
	}
	return b.SetMeta(metaLastID, lastID)
}

// checkWorkload reports an error unless tr holds a workload of n keys
// built by this command.
func checkWorkload(tr *prefixtree.Tree, n int) error {
	if tr.Meta(metaMarker) != markerValue || tr.Meta(metaKeys) != uint64(n) || tr.Len() != uint64(n) {
		return fmt.Errorf("whycache-readbench: %s holds %d keys and is not a whycache-readbench state of %d keys; remove it or pick another --state",
			tr.File().Path(), tr.Len(), n)
	}
	return nil
}

// openWorkload opens the state file of a child process and returns it with
// the workload keys.
func openWorkload(path string, n int) (*prefixtree.Tree, []byte, error) {
	tr, err := prefixtree.Open(path, prefixtree.Options{NoCreate: true})
	if err != nil {
		return nil, nil, fmt.Errorf("whycache-readbench: %w", err)
	}
	if err := checkWorkload(tr, n); err != nil {
		tr.Close()
		return nil, nil, err
	}
	return tr, workloadKeys(n), nil
}
