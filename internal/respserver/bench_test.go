package respserver

import (
	"bufio"
	"net"
	"strconv"
	"testing"
)

// BenchmarkServeGet measures GETs of one 100-byte value over loopback
// TCP, one request per round trip (-P 1) and 16 per round trip, from 50
// connections (the shape of redis-benchmark's default run). The client
// side is minimal: it writes the request bytes and reads the reply bytes.
func BenchmarkServeGet(b *testing.B) {
	for _, pipeline := range []int{1, 16} {
		b.Run("P"+strconv.Itoa(pipeline), func(b *testing.B) {
			addr, inst := startServer(b, "")
			if _, err := inst.Set(b.Context(), []byte("key:__rand_int__"), make([]byte, 100)); err != nil {
				b.Fatal(err)
			}
			var req []byte
			for range pipeline {
				req = append(req, encode("GET", "key:__rand_int__")...)
			}
			reply := len("$100\r\n") + 100 + 2
			b.SetParallelism(25) // 50 connections on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				r := bufio.NewReaderSize(c, 64<<10)
				buf := make([]byte, reply*pipeline)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if _, err := readFullBuf(r, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*pipeline)/b.Elapsed().Seconds(), "GETs/s")
		})
	}
}

func readFullBuf(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
