package verifier

import (
	"net"
	"net/http"
	"time"
)

// TransportOptions tune the connections to upstreams, shared by free and
// paid proxying. Zero fields take the defaults below.
type TransportOptions struct {
	// MaxIdleConnsPerHost is how many idle keep-alive connections to one
	// upstream are kept for reuse (default 256). Go's default of 2 makes a
	// busy gate open and close a connection for most requests, leaving
	// thousands of sockets in TIME_WAIT.
	MaxIdleConnsPerHost int
	// MaxIdleConns bounds idle connections over all upstreams (default
	// 1024).
	MaxIdleConns int
	// IdleConnTimeout closes a connection idle this long (default 90s).
	IdleConnTimeout time.Duration
	// DialTimeout bounds connecting to an upstream (default 10s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's status line
	// and headers once the request is sent (default 0: none, because
	// inference upstreams may think for minutes).
	ResponseHeaderTimeout time.Duration
}

// Defaults of TransportOptions.
const (
	DefaultMaxIdleConnsPerHost = 256
	DefaultMaxIdleConns        = 1024
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultDialTimeout         = 10 * time.Second
)

// NewUpstreamTransport builds the transport the gate proxies with.
func NewUpstreamTransport(o TransportOptions) *http.Transport {
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = DefaultMaxIdleConns
	}
	if o.MaxIdleConns < o.MaxIdleConnsPerHost {
		o.MaxIdleConns = o.MaxIdleConnsPerHost
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = o.MaxIdleConns
	t.MaxIdleConnsPerHost = o.MaxIdleConnsPerHost
	t.IdleConnTimeout = o.IdleConnTimeout
	t.ResponseHeaderTimeout = o.ResponseHeaderTimeout
	return t
}
