package facilitator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// node is the facilitator's view of the chain's JSON-RPC endpoint: every
// call is bounded by the RPC timeout, timed into the rpc histogram, and its
// error scrubbed of the endpoint's URL (which often carries an API key).
type node struct {
	ec        *ethclient.Client
	rc        *rpc.Client
	transport *http.Transport
	timeout   time.Duration
	metrics   *Metrics
	rawURL    string
	safeURL   string
}

func dialNode(ctx context.Context, rawURL string, timeout time.Duration, m *Metrics) (*node, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid RPC URL %q: want http(s)://host[:port][/path]", redactURL(rawURL))
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("invalid RPC URL %s: scheme %q is not supported, use http or https", redactURL(rawURL), u.Scheme)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	hc := &http.Client{Transport: tr}
	rc, err := rpc.DialOptions(ctx, rawURL, rpc.WithHTTPClient(hc))
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("connect to RPC %s: %w", redactURL(rawURL), err)
	}
	return &node{ec: ethclient.NewClient(rc), rc: rc, transport: tr, timeout: timeout, metrics: m,
		rawURL: rawURL, safeURL: redactURL(rawURL)}, nil
}

func (n *node) close() {
	n.rc.Close()
	n.transport.CloseIdleConnections()
}

// redactURL keeps only the scheme and host of an RPC URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparseable URL)"
	}
	if u.Path == "" || u.Path == "/" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rpcError is an RPC failure: the node could not be reached, timed out or
// answered an error that is not a revert.
type rpcError struct {
	method string
	err    error
	msg    string
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// do runs one JSON-RPC call with the timeout and the histogram.
func (n *node) do(ctx context.Context, method string, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	n.metrics.RPCDuration.WithLabelValues(methodLabel(method)).Observe(time.Since(start).Seconds())
	if err == nil {
		return nil
	}
	msg := strings.ReplaceAll(err.Error(), n.rawURL, n.safeURL)
	switch {
	case ctx.Err() != nil:
		msg = fmt.Sprintf("%s to %s: %v", method, n.safeURL, ctx.Err())
	case errors.Is(cctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		msg = fmt.Sprintf("%s to %s: no answer within the RPC timeout of %s", method, n.safeURL, n.timeout)
	default:
		msg = fmt.Sprintf("%s to %s: %s", method, n.safeURL, msg)
	}
	return &rpcError{method: method, err: err, msg: msg}
}

func (n *node) chainID(ctx context.Context) (*big.Int, error) {
	var id *big.Int
	err := n.do(ctx, "eth_chainId", func(ctx context.Context) (err error) {
		id, err = n.ec.ChainID(ctx)
		return err
	})
	return id, err
}

// call runs eth_call against the latest block. A revert comes back as the
// node's error unchanged (so its data can be decoded); use isRevert.
func (n *node) call(ctx context.Context, from common.Address, to common.Address, data []byte) ([]byte, error) {
	var out []byte
	var callErr error
	err := n.do(ctx, "eth_call", func(ctx context.Context) error {
		out, callErr = n.ec.CallContract(ctx, ethereum.CallMsg{From: from, To: &to, Data: data}, nil)
		if isRevertErr(callErr) {
			return nil // a revert is an answer, not an RPC failure
		}
		return callErr
	})
	if err != nil {
		return nil, err
	}
	return out, callErr
}

func (n *node) codeAt(ctx context.Context, addr common.Address) ([]byte, error) {
	var code []byte
	err := n.do(ctx, "eth_getCode", func(ctx context.Context) (err error) {
		code, err = n.ec.CodeAt(ctx, addr, nil)
		return err
	})
	return code, err
}

func (n *node) estimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error) {
	var gas uint64
	var callErr error
	err := n.do(ctx, "eth_estimateGas", func(ctx context.Context) error {
		gas, callErr = n.ec.EstimateGas(ctx, msg)
		if isRevertErr(callErr) {
			return nil
		}
		return callErr
	})
	if err != nil {
		return 0, err
	}
	return gas, callErr
}

func (n *node) suggestTip(ctx context.Context) (*big.Int, error) {
	var tip *big.Int
	err := n.do(ctx, "eth_maxPriorityFeePerGas", func(ctx context.Context) (err error) {
		tip, err = n.ec.SuggestGasTipCap(ctx)
		return err
	})
	return tip, err
}

func (n *node) latestHeader(ctx context.Context) (*types.Header, error) {
	var h *types.Header
	err := n.do(ctx, "eth_getBlockByNumber", func(ctx context.Context) (err error) {
		h, err = n.ec.HeaderByNumber(ctx, nil)
		return err
	})
	return h, err
}

func (n *node) pendingNonce(ctx context.Context, addr common.Address) (uint64, error) {
	var nonce uint64
	err := n.do(ctx, "eth_getTransactionCount", func(ctx context.Context) (err error) {
		nonce, err = n.ec.PendingNonceAt(ctx, addr)
		return err
	})
	return nonce, err
}

// send submits a signed transaction. An error the node answered (JSON-RPC
// error: nonce too low, underpriced, a revert) is returned as is; a
// transport failure as *rpcError.
func (n *node) send(ctx context.Context, tx *types.Transaction) error {
	var nodeErr error
	err := n.do(ctx, "eth_sendRawTransaction", func(ctx context.Context) error {
		nodeErr = n.ec.SendTransaction(ctx, tx)
		var re rpc.Error
		if errors.As(nodeErr, &re) {
			return nil
		}
		return nodeErr
	})
	if err != nil {
		return err
	}
	return nodeErr
}

func (n *node) receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	var r *types.Receipt
	err := n.do(ctx, "eth_getTransactionReceipt", func(ctx context.Context) (err error) {
		r, err = n.ec.TransactionReceipt(ctx, hash)
		return err
	})
	return r, err
}

// isRevertErr reports whether a node error is an EVM revert (an answer about
// the transaction) rather than a failure to reach or use the node.
func isRevertErr(err error) bool {
	if err == nil {
		return false
	}
	var re rpc.Error
	if !errors.As(err, &re) {
		return false
	}
	if strings.Contains(err.Error(), "execution reverted") {
		return true
	}
	var de rpc.DataError
	return errors.As(err, &de) && de.ErrorData() != nil
}

// pending reports whether the node knows the transaction (pending or
// mined).
func (n *node) pending(ctx context.Context, hash common.Hash) (bool, error) {
	var known bool
	err := n.do(ctx, "eth_getTransactionByHash", func(ctx context.Context) error {
		_, _, err := n.ec.TransactionByHash(ctx, hash)
		if errors.Is(err, ethereum.NotFound) {
			return nil
		}
		known = err == nil
		return err
	})
	return known, err
}

func (n *node) logs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error) {
	var logs []types.Log
	err := n.do(ctx, "eth_getLogs", func(ctx context.Context) (err error) {
		logs, err = n.ec.FilterLogs(ctx, q)
		return err
	})
	return logs, err
}
