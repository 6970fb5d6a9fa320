package main

import (
	"net"

	"github.com/whycache/whycache/redisnotify"
)

// redisPasswordEnv carries the password of the --notify Redis server.
const redisPasswordEnv = "WHYCACHE_REDIS_PASSWORD"

// notifier returns the Notifier --notify names. The channel defaults to
// one per log: the store's description (without a password).
func (e *env) notifier() (*redisnotify.Notifier, error) {
	if _, _, err := net.SplitHostPort(e.g.notify); err != nil {
		return nil, usageErrorf("--notify %q: want HOST:PORT of a Redis server", e.g.notify)
	}
	channel := e.g.notifyChannel
	if channel == "" {
		channel = "whycache:" + e.g.table
		if spec, err := parseStore(e.g.store); err == nil {
			channel = "whycache:" + spec.String()
			if spec.kind == storeMySQL {
				channel += ":" + e.g.table
			}
		}
	}
	return redisnotify.New(redisnotify.Options{Addr: e.g.notify, Password: e.getenv(redisPasswordEnv), Channel: channel})
}
