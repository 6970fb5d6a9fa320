package whycache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/internal/mysqltest"
)

// instProxy forwards TCP connections from a loopback port to the MySQL
// server; down cuts every connection and refuses new ones until up.
type instProxy struct {
	target string
	addr   string // the listening address, the same after every up
	wg     sync.WaitGroup

	mu    sync.Mutex            // guards the following
	ln    net.Listener          // nil while down
	conns map[net.Conn]struct{} // live connections, both sides
	ports map[int]bool          // local ports of live connections to the server
}

// startInstProxy starts a proxy to target on a free loopback port; it is
// shut down at cleanup.
func startInstProxy(t *testing.T, target string) *instProxy {
	t.Helper()
	p := &instProxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}, ports: map[int]bool{}}
	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

// up starts listening (again) on the proxy's address.
func (p *instProxy) up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go p.serve(ln)
	return nil
}

// down closes the listener and every connection.
func (p *instProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.ports)
}

// serverPorts returns the local ports of the live connections to the
// server (the server lists them as the clients' ports).
func (p *instProxy) serverPorts() map[int]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]bool, len(p.ports))
	for port := range p.ports {
		out[port] = true
	}
	return out
}

func (p *instProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(ln, c)
	}
}

// track registers c as a live connection of listener ln, or closes it and
// returns false if the proxy went down since ln was opened.
func (p *instProxy) track(ln net.Listener, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *instProxy) forward(ln net.Listener, client net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	if !p.track(ln, client) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(ln, server) {
		return
	}
	defer server.Close()
	port := server.LocalAddr().(*net.TCPAddr).Port
	p.mu.Lock()
	p.ports[port] = true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	delete(p.ports, port)
	p.mu.Unlock()
}

// killProxied kills, from the admin pool, every server connection that
// comes through the proxy, and returns how many it killed.
func killProxied(ctx context.Context, admin *sql.DB, p *instProxy) (int, error) {
	ports := p.serverPorts()
	rows, err := admin.QueryContext(ctx, "SELECT ID, HOST FROM information_schema.PROCESSLIST")
	if err != nil {
		return 0, err
	}
	var ids []uint64
	for rows.Next() {
		var id uint64
		var host string
		if err := rows.Scan(&id, &host); err != nil {
			rows.Close()
			return 0, err
		}
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			if port, err := strconv.Atoi(host[i+1:]); err == nil && ports[port] {
				ids = append(ids, id)
			}
		}
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	killed := 0
	for _, id := range ids {
		_, err := admin.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
		var me *mysql.MySQLError
		switch {
		case err == nil:
			killed++
		case errors.As(err, &me) && me.Number == 1094: // unknown thread: already gone
		default:
			return killed, err
		}
	}
	return killed, nil
}

// outageWriter writes to the instance of one machine and tracks what each
// key may hold locally: the value of the last acknowledged write, or of a
// later write whose outcome is unknown (it may have committed, and then
// any Update may apply it).
type outageWriter struct {
	t       *testing.T
	c       *Instance
	rng     *rand.Rand
	keys    []string
	cnt     int
	acks    []instAck
	allowed map[string][]string // key -> values it may hold ("" for missing)
	failed  int
	unknown int
}

// write makes one random write. With mustFail it fails the test unless
// the write fails and left every key as it was; with mustSucceed, unless
// it succeeds. Otherwise a write that fails with an unknown outcome may
// have committed, so its values join what the keys may hold.
func (o *outageWriter) write(mustFail, mustSucceed bool) {
	o.t.Helper()
	o.cnt++
	a, err := instRandomWrite(context.Background(), o.c, o.rng, o.keys, 3, 0, o.cnt)
	switch {
	case err == nil && mustFail:
		o.t.Fatalf("%v succeeded during the outage", a)
	case err != nil && mustSucceed:
		o.t.Fatalf("%v: %v", a, err)
	case err == nil:
		o.acks = append(o.acks, a)
		for _, k := range a.keys {
			o.allowed[k] = []string{o.expect(a)}
		}
	default:
		o.failed++
		if errors.Is(err, ErrCommitUnknown) {
			o.unknown++
		}
		if (errors.Is(err, ErrCommitUnknown) || a.id != 0) && !mustFail {
			for _, k := range a.keys {
				o.allowed[k] = append(o.allowed[k], o.expect(a))
			}
		}
	}
	for _, k := range a.keys {
		got, gerr := o.c.Get([]byte(k))
		if gerr != nil && !errors.Is(gerr, ErrNotFound) {
			o.t.Fatalf("Get(%s) after %v: %v", k, a, gerr)
		}
		if !o.holdsAllowed(k, got, gerr == nil) {
			o.t.Fatalf("after %v (error %v): key %s holds %q, allowed %q", a, err, k, got, o.allowed[k])
		}
	}
}

// expect returns the "W.C." prefix of the values of write a, or "" for a
// delete.
func (o *outageWriter) expect(a instAck) string {
	if a.del {
		return ""
	}
	return fmt.Sprintf("%d.%d.", a.writer, a.counter)
}

func (o *outageWriter) holdsAllowed(k string, v []byte, found bool) bool {
	for _, want := range o.allowed[k] {
		if want == "" && !found || want != "" && found && strings.HasPrefix(string(v), want) {
			return true
		}
	}
	return false
}

// updateBoth calls Update on the writer's machine w and the other machine
// u, each up to 5 times (the first attempts may meet connections broken
// before), and fails the test unless both succeed.
func updateBoth(t *testing.T, when string, w, u *Instance) {
	t.Helper()
	for name, c := range map[string]*Instance{"writer's machine": w, "other machine": u} {
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = c.Update(context.Background()); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: Update %s: %v", name, when, err)
		}
	}
}

// TestInstanceMySQLOutage writes from this process and reads in a loop
// from a helper process on the same state, both through a TCP proxy to
// MySQL. While the proxy is down, reads keep returning the old values,
// writes fail and change nothing locally, and Update fails on both
// machines; once it is up, Update resumes. Then a storm of KILLs of the
// proxied server connections runs under more writes. At the end both
// states equal the replay of the log, every acknowledged write is in the
// log, and the reader never saw a key go back.
func TestInstanceMySQLOutage(t *testing.T) {
	ctx := context.Background()
	dsn := mysqltest.DSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, adminDB := mysqlTestStore(t, MySQLStoreOptions{})
	mysqltest.QuietDriver(t)
	proxy := startInstProxy(t, cfg.Addr)
	pcfg := cfg.Clone()
	pcfg.Addr, pcfg.Timeout, pcfg.ReadTimeout, pcfg.WriteTimeout = proxy.addr, 2*time.Second, 10*time.Second, 10*time.Second
	pdsn := pcfg.FormatDSN()
	machine := func() *Instance {
		db, err := sql.Open("mysql", pdsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c := newInstance(t, mysqlTestStoreOn(t, db, admin.Table(), MySQLStoreOptions{}), Options{})
		mustUpdate(t, c)
		return c
	}
	w, u := machine(), machine()
	var keys []string
	for i := 0; i < 16; i++ {
		keys = append(keys, fmt.Sprintf("o%02d", i))
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	o := &outageWriter{t: t, c: w, rng: rand.New(rand.NewPCG(seed, 1)), keys: keys, allowed: map[string][]string{}}
	for _, k := range keys {
		o.allowed[k] = []string{""}
	}
	reader := startInstProc(t, "reader", instHelperArgs{Role: "reader", DSN: pdsn, Table: admin.Table(),
		State: w.StatePath(), Keys: keys, UpdateEvery: 50})
	probe := func() (reads, updates, failed int) {
		t.Helper()
		from := reader.Len()
		if err := reader.Send("probe"); err != nil {
			t.Fatal(err)
		}
		_, line, ok := reader.await(from, "reads ")
		if !ok {
			t.Fatalf("reader ended: %s", reader.output())
		}
		fmt.Sscanf(line, "reads %d %d %d", &reads, &updates, &failed)
		return reads, updates, failed
	}

	// Before: everything works.
	for i := 0; i < 40; i++ {
		o.write(false, true)
	}
	mustUpdate(t, u)
	reads0, _, failed0 := probe()

	// Proxy down.
	proxy.down()
	onW, onU := instItems(w), instItems(u)
	for i := 0; i < 20; i++ {
		o.write(true, false)
	}
	if d := instDiff(instItems(w), onW); d != "" {
		t.Fatalf("writer's machine changed by failed writes: %s", d)
	}
	for name, c := range map[string]*Instance{"writer's machine": w, "other machine": u} {
		if err := c.Update(ctx); err == nil {
			t.Fatalf("%s: Update succeeded during the outage", name)
		}
	}
	if d := instDiff(instItems(u), onU); d != "" {
		t.Fatalf("other machine changed during the outage: %s", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	reads1, _, failed1 := probe()
	for failed1 == failed0 && time.Now().Before(deadline) {
		reads1, _, failed1 = probe()
	}
	if reads1 <= reads0 || failed1 == failed0 {
		t.Fatalf("reader during the outage: %d reads (%d before), %d failed Updates (%d before)", reads1, reads0, failed1, failed0)
	}
	outageFailed := o.failed

	// Proxy up: Update resumes.
	if err := proxy.up(); err != nil {
		t.Fatal(err)
	}
	updateBoth(t, "after the outage", w, u)
	for i := 0; i < 20; i++ {
		o.write(false, true)
	}

	// KILL storm.
	stop := make(chan struct{})
	stormDone := make(chan error, 1)
	var kills int
	go func() {
		var err error
		for round := 0; round < 2000 && err == nil; round++ {
			select {
			case <-stop:
				stormDone <- nil
				return
			default:
			}
			var n int
			n, err = killProxied(ctx, adminDB, proxy)
			kills += n
			time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond) // pacing, not synchronization
		}
		stormDone <- err
	}()
	var uOK, uFailed int
	stormFailed := o.failed
	for i := 0; i < 150; i++ {
		o.write(false, false)
		if i%10 == 0 {
			if u.Update(ctx) == nil {
				uOK++
			} else {
				uFailed++
			}
		}
	}
	close(stop)
	if err := <-stormDone; err != nil {
		t.Fatalf("KILL storm: %v", err)
	}
	stormFailed = o.failed - stormFailed

	// After: both machines catch up with everything committed.
	updateBoth(t, "at the end", w, u)
	reader.wait(t)
	l := readInstLog(t, admin)
	wantReplay(t, "writer's machine", w, l)
	wantReplay(t, "other machine", u, l)
	replaced := checkAcks(t, l, o.acks, true)
	lines := reader.protocol()
	obs, unordered := checkMonotonic(t, "reader", lines, instValueIDs(l, o.acks))
	if unordered != 0 {
		t.Fatalf("reader: %d observations could not be ordered", unordered)
	}
	t.Logf("outage: %d writes failed, reader went from %d to %d reads and its failed Updates from %d to %d",
		outageFailed, reads0, reads1, failed0, failed1)
	t.Logf("storm: %d connections killed, %d of 150 writes failed (%d outcomes unknown in all), other machine's Updates %d ok / %d failed",
		kills, stormFailed, o.unknown, uOK, uFailed)
	t.Logf("end: %d acked writes (%d replaced by newer single-key records), %d records, reader %s, %d changes checked",
		len(o.acks), replaced, len(l.ids), lines[len(lines)-1], obs)
}
