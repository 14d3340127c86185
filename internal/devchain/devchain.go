// Package devchain runs obol's development chain in process: a go-ethereum
// node in dev mode (every fork active, proof-of-stake driven by a simulated
// beacon that seals a block as soon as a transaction arrives) serving
// standard JSON-RPC over HTTP on a loopback port, so any client — obol's
// facilitator, a wallet, another x402 implementation — can use it.
//
// Start builds deterministic, ETH-funded accounts (deployer, facilitator,
// seller and buyers), deploys obol's EIP-3009 token ObolUSD (embed/token)
// with USDC's EIP-712 domain ("USDC"/"2" by default) and mints to every
// buyer. The chain lives in memory and disappears on Close.
package devchain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/token"
)

// Defaults applied by Start to zero fields of Config.
const (
	DefaultListenAddr = "127.0.0.1:0"
	DefaultBuyers     = 3
	// TokenSymbol is the dev token's ERC-20 symbol.
	TokenSymbol = "USDC"
	// TokenDecimals are the dev token's decimals, like USDC.
	TokenDecimals = 6
)

// DefaultMintPerBuyer is 1000 tokens at 6 decimals.
func DefaultMintPerBuyer() *big.Int { return big.NewInt(1000_000_000) }

// EthPerAccount is the ETH (in wei) every dev account gets in genesis: 10^6 ETH.
func EthPerAccount() *big.Int {
	return new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(params.Ether))
}

// Config configures Start. The zero value is usable.
type Config struct {
	// ListenAddr is host:port of the JSON-RPC HTTP server; port 0 picks a
	// free port. Default "127.0.0.1:0".
	ListenAddr string
	// ChainID defaults to evm.DevChainID (1337).
	ChainID int64
	// TokenName and TokenVersion form the token's EIP-712 domain (TokenName
	// is also its ERC-20 name()). Defaults "USDC" and "2", like USDC on Base
	// Sepolia; "USD Coin"/"2" signs like mainnet USDC.
	TokenName, TokenVersion string
	// Buyers is the number of buyer accounts (default 3; negative means 0).
	Buyers int
	// MintPerBuyer is the token amount, in atomic units, minted to each
	// buyer (default 1000 USDC = 1000e6; zero value means default, a
	// negative value mints nothing).
	MintPerBuyer *big.Int
	// KeyDir, if set, receives one file per account, <name>.key, holding its
	// private key as 0x-prefixed hex (mode 0600; the directory is created
	// 0700). The files are what --key-file flags read.
	KeyDir string
	// Logger receives progress at debug level and the ready line at info.
	// Nil discards.
	Logger *slog.Logger
	// MaxAhead is how far the chain's block time may run ahead of the wall
	// clock (default DefaultMaxAhead). Block timestamps are whole seconds
	// and strictly increasing, so a chain that seals a block per
	// transaction runs ahead when it settles more than one a second: up to
	// MaxAhead it seals at once; beyond, it waits for the clock, and the
	// transactions that arrive meanwhile share the next block. Sequential
	// settlements then run at one a second.
	MaxAhead time.Duration
}

// DefaultMaxAhead keeps the chain's clock within 15 s of the wall clock:
// a burst of 15 settlements goes through at once, and an authorization
// valid for 60 s still has 45 s on chain.
const DefaultMaxAhead = 15 * time.Second

// Account is a dev account. Its key is derived from its name, so the same
// name has the same address on every run.
type Account struct {
	Name    string            `json:"name"`
	Address common.Address    `json:"address"`
	Key     *ecdsa.PrivateKey `json:"-"`
	// KeyFile is the path of the key file, when Config.KeyDir was set.
	KeyFile string `json:"keyFile,omitempty"`
}

// Chain is a running development chain.
type Chain struct {
	// RPCURL is the JSON-RPC HTTP endpoint, e.g. http://127.0.0.1:41234.
	RPCURL  string `json:"rpcUrl"`
	ChainID int64  `json:"chainId"`
	// Token is the deployed ObolUSD: address, symbol "USDC", 6 decimals,
	// EIP-712 name and version; Chain is the CAIP-2 id.
	Token evm.Token `json:"token"`
	// Deployer deployed the token and is its owner (the only minter).
	Deployer Account `json:"deployer"`
	// Facilitator has ETH to pay gas for settlements.
	Facilitator Account `json:"facilitator"`
	// Seller receives payments; it starts with no tokens.
	Seller Account `json:"seller"`
	// Buyers each hold Config.MintPerBuyer tokens.
	Buyers []Account `json:"buyers"`

	stack     *node.Node
	rpc       *rpc.Client
	client    *ethclient.Client
	log       *slog.Logger
	mu        sync.Mutex // serializes the deployer's transactions (Mint)
	closeOnce sync.Once
	closeErr  error
}

// AccountKey returns the deterministic private key of the dev account
// name: keccak256("obol-dev/" + name).
func AccountKey(name string) *ecdsa.PrivateKey {
	k, err := crypto.ToECDSA(crypto.Keccak256([]byte("obol-dev/" + name)))
	if err != nil {
		// A keccak output is a valid secp256k1 scalar except with
		// probability ~2^-128; the names used here are fixed.
		panic(fmt.Sprintf("dev account %q: %v", name, err))
	}
	return k
}

// NewAccount returns the deterministic account called name (no key file).
func NewAccount(name string) Account {
	k := AccountKey(name)
	return Account{Name: name, Address: crypto.PubkeyToAddress(k.PublicKey), Key: k}
}

// BuyerName is the name of the i-th buyer (0-based): buyer-1, buyer-2, …
func BuyerName(i int) string { return "buyer-" + strconv.Itoa(i+1) }

func (cfg *Config) defaults() error {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	if cfg.ChainID == 0 {
		cfg.ChainID = evm.DevChainID
	}
	if cfg.ChainID < 0 {
		return fmt.Errorf("chain id %d: want a positive integer", cfg.ChainID)
	}
	if cfg.TokenName == "" {
		cfg.TokenName = evm.DevTokenName
	}
	if cfg.TokenVersion == "" {
		cfg.TokenVersion = evm.DevTokenVersion
	}
	if cfg.Buyers == 0 {
		cfg.Buyers = DefaultBuyers
	}
	if cfg.Buyers < 0 {
		cfg.Buyers = 0
	}
	if cfg.MintPerBuyer == nil || cfg.MintPerBuyer.Sign() == 0 {
		cfg.MintPerBuyer = DefaultMintPerBuyer()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Start starts a development chain and returns once the token is deployed
// and minted (about a tenth of a second). Cancelling ctx aborts start-up;
// the chain itself runs until Close.
func Start(ctx context.Context, cfg Config) (*Chain, error) {
	began := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	host, port, err := splitListen(cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	c, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.startNode(cfg, host, port); err != nil {
		return nil, err
	}
	if err := c.deployToken(ctx, cfg); err != nil {
		c.Close()
		return nil, err
	}
	c.log.Info("dev chain ready", "rpc", c.RPCURL, "chainId", c.ChainID, "token", c.Token.Address,
		"buyers", len(c.Buyers), "took", time.Since(began).Round(time.Millisecond))
	return c, nil
}

// Layout returns the chain Start would make, without running it: the
// deterministic accounts (their key files written when cfg.KeyDir is set)
// and the token as it will be deployed, at TokenAddress. Clients of a chain
// started elsewhere (another process, a pod) use it to know the accounts
// and token without asking the chain. RPCURL is empty.
func Layout(cfg Config) (*Chain, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return layout(cfg)
}

func layout(cfg Config) (*Chain, error) {
	c := &Chain{
		ChainID:     cfg.ChainID,
		Deployer:    NewAccount("deployer"),
		Facilitator: NewAccount("facilitator"),
		Seller:      NewAccount("seller"),
		log:         cfg.Logger,
	}
	for i := 0; i < cfg.Buyers; i++ {
		c.Buyers = append(c.Buyers, NewAccount(BuyerName(i)))
	}
	c.Token = tokenFor(cfg, TokenAddress())
	if cfg.KeyDir != "" {
		if err := c.writeKeys(cfg.KeyDir); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// TokenAddress is where every development chain deploys its token: the
// deployer's first transaction is the deployment, so the address follows
// from the deployer's (fixed) address and nonce 0.
func TokenAddress() common.Address {
	return crypto.CreateAddress(NewAccount("deployer").Address, 0)
}

func tokenFor(cfg Config, addr common.Address) evm.Token {
	return evm.Token{
		Chain:          "eip155:" + strconv.FormatInt(cfg.ChainID, 10),
		Address:        addr,
		Symbol:         TokenSymbol,
		Decimals:       TokenDecimals,
		EIP712Name:     cfg.TokenName,
		EIP712Version:  cfg.TokenVersion,
		TransferMethod: "eip3009",
	}
}

func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w (want host:port, e.g. 127.0.0.1:8545)", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen address %q: port %q is not a number from 0 to 65535", addr, p)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port != 0 {
		// Fail before building the node: a node whose HTTP server cannot
		// listen is torn down by go-ethereum without stopping the services
		// it already created.
		l, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err != nil {
			return "", 0, fmt.Errorf("listen on %s: %w (is another chain running? pick another port, or :0 for a free one)", addr, err)
		}
		l.Close()
	}
	return host, port, nil
}

func (c *Chain) accounts() []*Account {
	all := []*Account{&c.Deployer, &c.Facilitator, &c.Seller}
	for i := range c.Buyers {
		all = append(all, &c.Buyers[i])
	}
	return all
}

// virtualHosts are the Host headers the JSON-RPC server accepts: on a
// loopback address only local names; on all interfaces (0.0.0.0, ::, as in a
// pod behind a Service) any name, since callers use names like
// obol-devchain.obol-system.svc that the chain cannot know.
func virtualHosts(host string) []string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return []string{"*"}
	}
	return []string{"localhost", host}
}

func (c *Chain) startNode(cfg Config, host string, port int) error {
	stack, err := node.New(&node.Config{
		Name:             "obol-dev",
		DataDir:          "", // in memory
		P2P:              p2p.Config{NoDiscovery: true, MaxPeers: 0, ListenAddr: ""},
		HTTPHost:         host,
		HTTPPort:         port,
		HTTPVirtualHosts: virtualHosts(host),
		HTTPModules:      []string{"eth", "net", "web3"},
		HTTPTimeouts:     rpc.DefaultHTTPTimeouts,
		IPCPath:          "",
	})
	if err != nil {
		return fmt.Errorf("create dev node: %w", err)
	}

	chainConfig := *params.AllDevChainProtocolChanges
	chainConfig.ChainID = big.NewInt(cfg.ChainID)
	alloc := core.SystemContractAllocs()
	for _, a := range c.accounts() {
		alloc[a.Address] = types.Account{Balance: EthPerAccount()}
	}
	ethConf := ethconfig.Defaults
	ethConf.NetworkId = uint64(cfg.ChainID)
	ethConf.Genesis = &core.Genesis{
		Config:     &chainConfig,
		GasLimit:   ethconfig.Defaults.Miner.GasCeil,
		BaseFee:    big.NewInt(params.InitialBaseFee),
		Difficulty: big.NewInt(0),
		Alloc:      alloc,
	}
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true
	// No log index: eth_getLogs scans blocks instead, which is instant on a
	// short-lived chain, and the indexer's shutdown took seconds of Close.
	ethConf.LogNoHistory = true
	// Without this a transaction with a tip below the miner's default is
	// accepted by the pool but never sealed, and the sealing loop spins.
	ethConf.Miner.GasPrice = big.NewInt(1)

	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		stack.Close()
		return fmt.Errorf("create dev chain: %w", err)
	}
	filterSystem := filters.NewFilterSystem(backend.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(filterSystem)}})

	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, backend)
	if err != nil {
		stack.Close()
		return fmt.Errorf("create dev chain beacon: %w", err)
	}
	// Blocks are sealed by our own loop (sealer), not the one geth's
	// dev API starts: that one seals each block at least a second after the
	// previous, so a chain settling several payments a second ran minutes
	// ahead of the wall clock and expired 60 s authorizations on chain.
	maxAhead := cfg.MaxAhead
	if maxAhead <= 0 {
		maxAhead = DefaultMaxAhead
	}
	lc := &beaconLifecycle{beacon: beacon, backend: backend, maxAhead: maxAhead, done: make(chan struct{})}
	stack.RegisterLifecycle(lc)

	if err := stack.Start(); err != nil {
		stack.Close()
		return fmt.Errorf("start dev chain on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	c.stack = stack
	c.RPCURL = stack.HTTPEndpoint()
	c.rpc = stack.Attach()
	c.client = ethclient.NewClient(c.rpc)
	return nil
}

// beaconLifecycle starts and stops the beacon and the sealing loop with
// the node.
type beaconLifecycle struct {
	beacon   *catalyst.SimulatedBeacon
	backend  *eth.Ethereum
	maxAhead time.Duration
	done     chan struct{}
	stopped  sync.WaitGroup
}

func (l *beaconLifecycle) Start() error {
	if err := l.beacon.Start(); err != nil {
		return err
	}
	l.stopped.Add(1)
	go l.seal()
	return nil
}

func (l *beaconLifecycle) Stop() error {
	close(l.done)
	l.stopped.Wait()
	return l.beacon.Stop()
}

// seal seals a block as soon as a transaction enters the pool, unless the
// chain is already l.maxAhead ahead of the wall clock: then it waits until it
// is not, and seals everything pending in one block.
func (l *beaconLifecycle) seal() {
	defer l.stopped.Done()
	newTxs := make(chan core.NewTxsEvent)
	sub := l.backend.TxPool().SubscribeTransactions(newTxs, true)
	defer sub.Unsubscribe()
	// The pool's feed must never wait for a sealing in progress: new
	// transactions only leave a mark in kick.
	kick := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-l.done:
				return
			case <-newTxs:
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
	}()
	for {
		select {
		case <-l.done:
			return
		case <-kick:
		}
		for {
			if wait := sealDelay(l.backend.BlockChain().CurrentBlock().Time, time.Now(), l.maxAhead); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-l.done:
					t.Stop()
					return
				case <-t.C:
				}
			}
			// A transaction that arrives from here on is sealed now or
			// leaves a new mark in kick.
			select {
			case <-kick:
			default:
			}
			l.beacon.Commit()
			_ = l.backend.TxPool().Sync()
			if executable, _ := l.backend.TxPool().Stats(); executable == 0 {
				break
			}
		}
	}
}

// sealDelay is how long to wait before sealing the block after one at
// lastTime (unix seconds) so that it is at most maxAhead ahead of now.
func sealDelay(lastTime uint64, now time.Time, maxAhead time.Duration) time.Duration {
	next := time.Unix(int64(lastTime)+1, 0)
	return next.Sub(now.Add(maxAhead))
}

func (c *Chain) deployToken(ctx context.Context, cfg Config) error {
	chainID := big.NewInt(c.ChainID)
	addr, tx, err := token.Deploy(ctx, c.client, c.Deployer.Key, chainID, cfg.TokenName, TokenSymbol, cfg.TokenVersion, TokenDecimals)
	if err != nil {
		return fmt.Errorf("dev chain: %w", err)
	}
	if err := c.waitSuccess(ctx, tx, "deploy token"); err != nil {
		return err
	}
	c.Token = tokenFor(cfg, addr)
	c.log.Debug("dev token deployed", "address", addr, "name", cfg.TokenName, "version", cfg.TokenVersion)
	if cfg.MintPerBuyer.Sign() > 0 && len(c.Buyers) > 0 {
		to := make([]common.Address, len(c.Buyers))
		for i, b := range c.Buyers {
			to[i] = b.Address
		}
		if err := c.mint(ctx, to, cfg.MintPerBuyer); err != nil {
			return err
		}
	}
	return nil
}

// mint sends one mint transaction per recipient from the deployer, with
// consecutive nonces, and waits until all of them succeeded.
func (c *Chain) mint(ctx context.Context, to []common.Address, amount *big.Int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := c.Deployer.Address
	nonce, err := c.client.PendingNonceAt(ctx, from)
	if err != nil {
		return fmt.Errorf("dev chain: nonce of deployer: %w", err)
	}
	head, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return fmt.Errorf("dev chain: latest header: %w", err)
	}
	tip := big.NewInt(1)
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	signer := types.LatestSignerForChainID(big.NewInt(c.ChainID))
	txs := make([]*types.Transaction, 0, len(to))
	for i, addr := range to {
		data, err := token.PackMint(addr, amount)
		if err != nil {
			return err
		}
		tokenAddr := c.Token.Address
		// Gas costs depend on the forks the dev chain enables (a guessed
		// 150k ran out), so ask the node. Estimating every mint against the
		// same state can only overestimate the later ones of a batch.
		gas, err := c.client.EstimateGas(ctx, ethereumCallFrom(from, tokenAddr, data))
		if err != nil {
			return fmt.Errorf("dev chain: estimate mint to %s: %w", addr, err)
		}
		tx, err := types.SignNewTx(c.Deployer.Key, signer, &types.DynamicFeeTx{
			ChainID: big.NewInt(c.ChainID), Nonce: nonce + uint64(i), GasTipCap: tip, GasFeeCap: feeCap,
			Gas: gas + gas/4, To: &tokenAddr, Data: data,
		})
		if err != nil {
			return fmt.Errorf("dev chain: sign mint: %w", err)
		}
		if err := c.client.SendTransaction(ctx, tx); err != nil {
			return fmt.Errorf("dev chain: send mint to %s: %w", addr, err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := c.waitSuccess(ctx, tx, "mint"); err != nil {
			if _, cerr := c.client.CallContract(ctx, ethereumCallFrom(from, *tx.To(), tx.Data()), nil); cerr != nil {
				return fmt.Errorf("%w (%v)", err, cerr)
			}
			if r, rerr := c.client.TransactionReceipt(ctx, tx.Hash()); rerr == nil {
				return fmt.Errorf("%w (gas used %d of %d)", err, r.GasUsed, tx.Gas())
			}
			return err
		}
	}
	return nil
}

func (c *Chain) waitSuccess(ctx context.Context, tx *types.Transaction, what string) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := token.WaitMined(wctx, c.client, tx.Hash(), 5*time.Millisecond)
	if err != nil {
		return fmt.Errorf("dev chain: %s: %w", what, err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("dev chain: %s: transaction %s reverted", what, tx.Hash())
	}
	return nil
}

// Mint mints amount tokens to addr (from the deployer, the token's owner)
// and waits until the transaction is mined. Safe for concurrent use.
func (c *Chain) Mint(ctx context.Context, to common.Address, amount *big.Int) error {
	if amount == nil || amount.Sign() <= 0 {
		return fmt.Errorf("mint amount %v: want a positive number of atomic units", amount)
	}
	return c.mint(ctx, []common.Address{to}, amount)
}

// Client returns an ethclient connected in process (not over HTTP). It is
// closed by Close; do not close it yourself.
func (c *Chain) Client() *ethclient.Client { return c.client }

// CAIP2 returns the chain's CAIP-2 id, e.g. eip155:1337.
func (c *Chain) CAIP2() string { return c.Token.Chain }

// Domain returns the token's EIP-712 domain on this chain: what buyers sign.
func (c *Chain) Domain() evm.Domain { return c.Token.Domain(c.ChainID) }

// BalanceOf returns addr's token balance in atomic units.
func (c *Chain) BalanceOf(ctx context.Context, addr common.Address) (*big.Int, error) {
	data, err := token.PackBalanceOf(addr)
	if err != nil {
		return nil, err
	}
	out, err := c.client.CallContract(ctx, ethereumCall(c.Token.Address, data), nil)
	if err != nil {
		return nil, fmt.Errorf("balanceOf %s: %w", addr, err)
	}
	return token.UnpackUint(out)
}

// Register makes the dev chain and its token known to r.
func (c *Chain) Register(r *evm.Registry) { r.SetDevChain(c.ChainID, c.Token) }

// Close stops the chain and its HTTP server and releases everything Start
// acquired. Clients should close their own HTTP connections first; open
// keep-alive connections can delay the server's shutdown. Safe to call more
// than once.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() {
		if c.rpc != nil {
			c.rpc.Close()
		}
		if c.stack != nil {
			c.closeErr = c.stack.Close()
			if errors.Is(c.closeErr, node.ErrNodeStopped) {
				c.closeErr = nil
			}
		}
		c.log.Debug("dev chain stopped", "rpc", c.RPCURL)
	})
	return c.closeErr
}
