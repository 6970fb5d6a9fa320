package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache"
)

// Shape of the outage scenario.
const (
	outageMachines       = 2 // state files, each with its own connections through the proxy
	outageWriters        = 2 // writing goroutines per machine
	outageCallTimeout    = 5 * time.Second
	outageRecoverTimeout = 30 * time.Second
)

// outageMachine is one state file and what its writers got acknowledged.
type outageMachine struct {
	name string
	inst *whycache.Instance

	mu    sync.Mutex // guards acked
	acked []ackedWrite
}

// ackedWrite is a Set that returned without error: committed, and applied
// to this machine's state.
type ackedWrite struct{ key, value []byte }

// outageCounts are the scenario's counters, updated by its goroutines.
type outageCounts struct {
	acked, failedWrites, reads, badReads, updates, failedUpdates atomic.Int64
	firstBad                                                     atomic.Value // string: the first bad read
}

// outageScenario runs writers, local readers and Update loops on
// outageMachines states whose MySQL connections go through a proxy that
// is cut and restored at random (up 200–800 ms, down 200–1000 ms) for d.
// Every acknowledged Set must be readable from its machine at once and
// stay so; at the end every acknowledged write must be in the log, and
// every state must equal the log replay. No local read may fail at any
// time.
func outageScenario(ctx context.Context, t *torture, n int, d time.Duration) (string, error) {
	log, dir, cleanup, err := newRunFiles(ctx, t.cfg, "outage", n)
	if err != nil {
		return "", err
	}
	defer cleanup()
	upstream, err := mysqlAddr(log.dsn)
	if err != nil {
		return "", err
	}
	quietDriver()
	px, err := newProxy(upstream)
	if err != nil {
		return "", err
	}
	defer px.Close()
	proxied, err := withAddr(log.dsn, px.Addr())
	if err != nil {
		return "", err
	}
	plog := logRef{dsn: proxied, table: log.table}

	var machines []*outageMachine
	for m := range outageMachines {
		inst, closeInst, err := openState(ctx, filepath.Join(dir, fmt.Sprintf("machine%d.state", m+1)), plog, true)
		if err != nil {
			return "", err
		}
		defer closeInst()
		machines = append(machines, &outageMachine{name: fmt.Sprintf("machine%d", m+1), inst: inst})
	}

	var cnt outageCounts
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for m, mc := range machines {
		for w := range outageWriters {
			rng := rand.New(rand.NewPCG(t.rng.Uint64(), uint64(w)))
			prefix := fmt.Sprintf("o%d-%d-", m+1, w)
			wg.Add(1)
			go func() { defer wg.Done(); outageWriter(ctx, mc, prefix, rng, stop, &cnt) }()
		}
		rng := rand.New(rand.NewPCG(t.rng.Uint64(), 99))
		wg.Add(2)
		go func() { defer wg.Done(); outageReader(mc, rng, stop, &cnt) }()
		go func() { defer wg.Done(); outageFollower(ctx, mc, stop, &cnt) }()
	}

	cuts := 0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !sleep(ctx, t.randomDuration(200*time.Millisecond, 800*time.Millisecond)) {
			break
		}
		px.cut()
		cuts++
		sleep(ctx, t.randomDuration(200*time.Millisecond, time.Second))
		px.restore()
	}
	px.restore()
	close(stop)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if cnt.badReads.Load() > 0 {
		return "", fmt.Errorf("%w: %d of %d local reads failed during the outages; first: %v", errLost, cnt.badReads.Load(), cnt.reads.Load(), cnt.firstBad.Load())
	}

	// Every machine catches up once the network is back.
	for _, mc := range machines {
		if err := updateWithin(ctx, mc.inst, outageRecoverTimeout); err != nil {
			return "", err
		}
	}
	direct, closeDirect, err := log.open()
	if err != nil {
		return "", err
	}
	defer closeDirect()
	model, _, err := replay(ctx, direct)
	if err != nil {
		return "", err
	}
	for _, mc := range machines {
		for _, a := range mc.acked {
			if v, ok := model[string(a.key)]; !ok || !bytes.Equal(v, a.value) {
				return "", fmt.Errorf("%w: acknowledged write of %q from %s is not in the log (present: %v)", errLost, a.key, mc.name, ok)
			}
		}
	}
	insts := map[string]*whycache.Instance{}
	for _, mc := range machines {
		insts[mc.name] = mc.inst
	}
	records, keys, err := checkStates(ctx, direct, insts)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d cuts; %d acknowledged writes all in the log (%d failed during cuts); %d local reads, 0 failed; %d Updates (%d failed during cuts); %d records, %d×%d keys compared",
		cuts, cnt.acked.Load(), cnt.failedWrites.Load(), cnt.reads.Load(), cnt.updates.Load(), cnt.failedUpdates.Load(),
		records, len(machines), keys), nil
}

// outageWriter sets new keys (prefix + sequence number) until stop,
// recording the acknowledged ones. After a failure it waits 20 ms.
func outageWriter(ctx context.Context, mc *outageMachine, prefix string, rng *rand.Rand, stop <-chan struct{}, cnt *outageCounts) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Appendf(nil, "%s%07d", prefix, seq)
		value := make([]byte, rng.IntN(201))
		for i := range value {
			value[i] = byte(rng.Uint32())
		}
		cctx, cancel := context.WithTimeout(ctx, outageCallTimeout)
		_, err := mc.inst.Set(cctx, key, value)
		cancel()
		if err != nil {
			cnt.failedWrites.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		mc.mu.Lock()
		mc.acked = append(mc.acked, ackedWrite{key, value})
		mc.mu.Unlock()
		cnt.acked.Add(1)
	}
}

// outageReader reads random acknowledged keys of its machine until stop;
// each must be there with its value. It reads in bursts of 100 with a
// millisecond between them, to leave CPU to the rest.
func outageReader(mc *outageMachine, rng *rand.Rand, stop <-chan struct{}, cnt *outageCounts) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for range 100 {
			mc.mu.Lock()
			if len(mc.acked) == 0 {
				mc.mu.Unlock()
				break
			}
			a := mc.acked[rng.IntN(len(mc.acked))]
			mc.mu.Unlock()
			v, err := mc.inst.Get(a.key)
			cnt.reads.Add(1)
			if err != nil || !bytes.Equal(v, a.value) {
				if cnt.badReads.Add(1) == 1 {
					cnt.firstBad.Store(fmt.Sprintf("%s: Get(%q) = %d bytes, %v; want %d bytes", mc.name, a.key, len(v), err, len(a.value)))
				}
			}
		}
	}
}

// outageFollower calls Update every 20 ms until stop, as a follower
// daemon would; failures during cuts are expected and counted.
func outageFollower(ctx context.Context, mc *outageMachine, stop <-chan struct{}, cnt *outageCounts) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, outageCallTimeout)
		err := mc.inst.Update(cctx)
		cancel()
		cnt.updates.Add(1)
		if err != nil {
			cnt.failedUpdates.Add(1)
		}
	}
}

// updateWithin retries Update until it succeeds or d has passed.
func updateWithin(ctx context.Context, inst *whycache.Instance, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := inst.Update(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("whycache-torture: Update after the outage: %w", err)
		}
	}
}
