module github.com/whycache/whycache

go 1.23.0

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/go-sql-driver/mysql v1.9.3
	golang.org/x/sys v0.33.0
)

require filippo.io/edwards25519 v1.1.0 // indirect
