// Package devstack runs the whole x402 loop in one process: the development
// chain with obol's EIP-3009 token, a facilitator settling on it, a verifier
// in proxy mode in front of a small demo JSON API, and a funded buyer that
// pays through internal/buyer — what `obol dev` shows, callable from tests.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/buyer"
	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
	"github.com/obolstack/obol/internal/verifier"
)

// The demo offer.
const (
	DefaultListen  = "127.0.0.1:8080"
	DefaultPrice   = "0.001"
	OfferNamespace = "default"
	OfferName      = "demo"
	PathWeather    = "/weather"
	PathJoke       = "/joke"
	PathIndex      = "/" // the demo API's free index, part of the demo offer
)

// Options configure Start. The zero value runs the demo on 127.0.0.1:8080.
type Options struct {
	// Listen is the verifier's address, the one buyers call (default
	// 127.0.0.1:8080; port 0 picks a free port).
	Listen string
	// ChainListen is the chain's JSON-RPC address (default 127.0.0.1:0).
	ChainListen string
	// FacilitatorListen is the facilitator's address (default 127.0.0.1:0).
	FacilitatorListen string
	// Price is the demo offer's price per call in token units (default 0.001).
	Price string
	// Buyers is the number of funded buyer accounts (default 3).
	Buyers int
	// KeyDir receives the accounts' key files (mode 0600); "" writes none.
	KeyDir string
	// StackFile, when set, receives the stack file `obol buy pay` reads; it
	// is removed on Close.
	StackFile string
	// Logger receives the components' logs (default: discarded).
	Logger *slog.Logger
	// Step is called after each start-up step with a one-line description
	// and the time since Start began.
	Step func(msg string, elapsed time.Duration)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stack is a running dev stack.
type Stack struct {
	Chain    *devchain.Chain
	Registry *evm.Registry
	Token    evm.Token

	RPCURL         string
	FacilitatorURL string
	VerifierURL    string
	MetricsURL     string
	UpstreamURL    string

	// Offer is the demo offer every paid path belongs to.
	Offer verifier.Offer
	// Price is the demo price in token units; PriceAtomic in atomic units.
	Price       string
	PriceAtomic *big.Int
	// Buyer is the funded account Pay uses; Seller receives the payments.
	Buyer  devchain.Account
	Seller devchain.Account

	// StartedIn is how long Start took.
	StartedIn time.Duration

	opts      Options
	now       func() time.Time
	log       *slog.Logger
	fac       *facilitator.Server
	gate      *verifier.Server
	servers   []*http.Server
	client    *http.Client
	stackFile string
	closeOnce sync.Once
	closeErr  error
}

// Start brings the stack up; it takes about a second. On error everything
// already started is stopped.
func Start(ctx context.Context, opts Options) (st *Stack, err error) {
	began := time.Now()
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.ChainListen == "" {
		opts.ChainListen = "127.0.0.1:0"
	}
	if opts.FacilitatorListen == "" {
		opts.FacilitatorListen = "127.0.0.1:0"
	}
	if opts.Price == "" {
		opts.Price = DefaultPrice
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	step := func(format string, args ...any) {
		if opts.Step != nil {
			opts.Step(fmt.Sprintf(format, args...), time.Since(began))
		}
	}
	s := &Stack{opts: opts, now: opts.Now, log: opts.Logger, Registry: evm.NewRegistry(),
		Offer: verifier.Offer{Namespace: OfferNamespace, Name: OfferName}, Price: opts.Price,
		client: &http.Client{Timeout: time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// Bind the verifier's port first: it is the one a user chose, and the
	// one most likely to be taken.
	verifierL, err := listen(opts.Listen, "--listen")
	if err != nil {
		return nil, err
	}

	chain, err := devchain.Start(ctx, devchain.Config{ListenAddr: opts.ChainListen, Buyers: opts.Buyers, KeyDir: opts.KeyDir,
		Logger: opts.Logger.With("component", "devchain")})
	if err != nil {
		verifierL.Close()
		return nil, fmt.Errorf("start the dev chain: %w", err)
	}
	s.Chain, s.RPCURL, s.Token = chain, chain.RPCURL, chain.Token
	chain.Register(s.Registry)
	if len(chain.Buyers) == 0 {
		verifierL.Close()
		return nil, errors.New("the dev chain has no buyer account (Buyers must be at least 1)")
	}
	s.Buyer, s.Seller = chain.Buyers[0], chain.Seller
	step("dev chain     %s (chain id %d) at %s", chain.CAIP2(), chain.ChainID, chain.RPCURL)
	step("token         %s %s, EIP-712 %q v%s; %d buyers funded with %s %s each", s.Token.Symbol, s.Token.Address.Hex(),
		s.Token.EIP712Name, s.Token.EIP712Version, len(chain.Buyers),
		evm.FormatAmount(devchain.DefaultMintPerBuyer(), s.Token.Decimals), s.Token.Symbol)

	s.PriceAtomic, err = evm.ParseAmount(opts.Price, s.Token.Decimals)
	if err != nil || s.PriceAtomic.Sign() <= 0 {
		verifierL.Close()
		if err == nil {
			err = errors.New("must be more than zero")
		}
		return nil, fmt.Errorf("price %q: %w", opts.Price, err)
	}

	// Facilitator: settles on the dev chain from the facilitator account.
	facReg := prometheus.NewRegistry()
	s.fac, err = facilitator.NewServer(ctx, facilitator.Config{RPCURL: chain.RPCURL, Chain: chain.CAIP2(), Registry: s.Registry,
		Key: chain.Facilitator.Key, Registerer: facReg, Logger: opts.Logger.With("component", "facilitator"), Now: opts.Now})
	if err != nil {
		verifierL.Close()
		return nil, fmt.Errorf("start the facilitator: %w", err)
	}
	facL, err := listen(opts.FacilitatorListen, "the facilitator's address")
	if err != nil {
		verifierL.Close()
		return nil, err
	}
	s.FacilitatorURL = s.serve(facL, s.fac.Handler())
	step("facilitator   %s (fee payer %s)", s.FacilitatorURL, s.fac.FeePayer().Hex())

	upL, err := listen("127.0.0.1:0", "the demo upstream's address")
	if err != nil {
		verifierL.Close()
		return nil, err
	}
	s.UpstreamURL = s.serve(upL, newUpstream(opts.Now))
	step("demo upstream %s (GET %s, GET %s)", s.UpstreamURL, PathWeather, PathJoke)

	// Verifier in proxy mode in front of the demo upstream.
	verReg := prometheus.NewRegistry()
	metrics, err := verifier.NewMetrics(verReg)
	if err != nil {
		verifierL.Close()
		return nil, err
	}
	gate, err := verifier.New(verifier.Options{
		NewFacilitator: func(u string) (verifier.Facilitator, error) { return facilitator.NewClient(u) },
		Registry:       s.Registry, Metrics: metrics, Gatherer: verReg,
		Logger: opts.Logger.With("component", "verifier"), Now: opts.Now,
	})
	if err != nil {
		verifierL.Close()
		return nil, err
	}
	spec := &verifier.Spec{
		Source: "obol dev", PayTo: s.Seller.Address.Hex(), Chain: chain.CAIP2(), FacilitatorURL: s.FacilitatorURL,
		// The upstream serves the priced paths and the free index, so
		// nothing else passes: exact patterns, no stripPrefix, and the
		// index as an explicit free route (the verifier refuses a free
		// path that could reach a priced one on the same upstream).
		Mode: verifier.ModeProxy, Upstream: s.UpstreamURL, OfferNamespace: OfferNamespace, Unmatched: verifier.UnmatchedDeny,
		Routes: []verifier.RouteSpec{
			{Pattern: PathWeather, Price: opts.Price, OfferName: OfferName, Description: "Today's weather for ?city=", MimeType: "application/json",
				Discovery: &verifier.DiscoverySpec{Category: "weather", InputSchema: demoWeatherInput, OutputSchema: demoWeatherOutput, OutputExample: demoWeatherExample}},
			{Pattern: PathJoke, Price: opts.Price, OfferName: OfferName, Description: "A joke", MimeType: "application/json",
				Discovery: &verifier.DiscoverySpec{Category: "fun", OutputExample: demoJokeExample}},
			{Pattern: PathIndex, Price: "0", OfferName: OfferName, Description: "What the demo API sells"},
		},
	}
	cfg, err := verifier.Compile(spec, s.Registry, verifier.Environment{})
	if err != nil {
		verifierL.Close()
		return nil, fmt.Errorf("demo pricing: %w", err)
	}
	if err := gate.ApplyConfig(cfg); err != nil {
		verifierL.Close()
		return nil, fmt.Errorf("demo pricing: %w", err)
	}
	s.VerifierURL = s.serve(verifierL, gate.Handler())
	s.gate = gate
	s.MetricsURL = s.VerifierURL + verifier.PathMetrics
	step("verifier      %s (proxy mode; %s and %s cost %s %s, paid to the seller %s)", s.VerifierURL, PathWeather, PathJoke,
		opts.Price, s.Token.Symbol, s.Seller.Address.Hex())

	if opts.StackFile != "" {
		// Never take over the file of another obol dev that still runs:
		// `obol buy pay` would then sign for this chain's token while
		// talking to that one.
		if other, err := stackfile.Read(opts.StackFile); err == nil && other.PID != os.Getpid() && other.Alive() {
			step("stack file    %s belongs to another obol dev (pid %d, %s); not replaced — use --dev-stack to publish this one",
				opts.StackFile, other.PID, other.VerifierURL)
		} else {
			if err := stackfile.Write(opts.StackFile, s.Info()); err != nil {
				return nil, err
			}
			s.stackFile = opts.StackFile
			step("stack file    %s", opts.StackFile)
		}
	}
	s.StartedIn = time.Since(began)
	return s, nil
}

func listen(addr, what string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w (is another obol dev running? pick another address, e.g. --listen 127.0.0.1:0)", addr, what, err)
	}
	return l, nil
}

// serve runs h on l until Close and returns its base URL.
func (s *Stack) serve(l net.Listener, h http.Handler) string {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return "http://" + l.Addr().String()
}

// Info is what the stack file records.
func (s *Stack) Info() stackfile.Info {
	chain, _ := s.Registry.Chain(s.Token.Chain)
	return stackfile.Info{
		Format: stackfile.FormatVersion, PID: os.Getpid(), StartedAt: s.now().UTC().Truncate(time.Second),
		Chain: chain, RPCURL: s.RPCURL, Token: s.Token,
		FacilitatorURL: s.FacilitatorURL, VerifierURL: s.VerifierURL, MetricsURL: s.MetricsURL,
		PaidURLs: []string{s.URL(PathWeather), s.URL(PathJoke)}, Price: s.Price,
		SellerAddress: s.Seller.Address.Hex(), BuyerAddress: s.Buyer.Address.Hex(), BuyerKeyFile: s.Buyer.KeyFile,
	}
}

// URL is the verifier's URL for a path (and query), what buyers call.
func (s *Stack) URL(pathAndQuery string) string { return s.VerifierURL + pathAndQuery }

// Payer returns a payer for the stack's buyer, capped at the demo price.
func (s *Stack) Payer() *buyer.Payer {
	return &buyer.Payer{Key: s.Buyer.Key, Registry: s.Registry, HTTPClient: s.client, MaxAmount: s.Price,
		AllowPayTo: nil, Network: s.Token.Chain, Now: s.now}
}

// Call is the outcome of one paid call.
// Its body, payment and receipt have the shapes of `obol buy pay -o json`.
type Call struct {
	N       int                `json:"n"`
	URL     string             `json:"url"`
	Status  int                `json:"status"`
	Body    any                `json:"body"`
	Payment *buyer.PaymentView `json:"payment"`
	Receipt *buyer.Receipt     `json:"receipt"`
	Elapsed time.Duration      `json:"elapsedNs"`
}

// Amount is what the call paid for display, e.g. "0.001 USDC"; "" when
// nothing was asked.
func (c Call) Amount() string {
	if c.Payment == nil {
		return ""
	}
	return c.Payment.Amount + " " + c.Payment.Symbol
}

// Transaction is the settlement's transaction hash, "" without one.
func (c Call) Transaction() string {
	if c.Receipt == nil {
		return ""
	}
	return c.Receipt.Transaction
}

var demoCities = []string{"Lisbon", "Nairobi", "Tokyo", "Lima", "Berlin", "Montreal", "Auckland"}

// Pay makes n paid calls to the demo's /weather (a different city each
// time) with the stack's buyer, through internal/buyer — the same code path
// as `obol buy pay`. each, when set, sees every call as it completes. It
// stops at the first call that is not paid and settled.
func (s *Stack) Pay(ctx context.Context, n int, each func(Call)) ([]Call, error) {
	p := s.Payer()
	var calls []Call
	for i := 1; i <= n; i++ {
		u := s.URL(PathWeather + "?city=" + url.QueryEscape(demoCities[(i-1)%len(demoCities)]))
		began := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return calls, err
		}
		res, err := p.Do(ctx, req)
		if err != nil {
			return calls, fmt.Errorf("paid call %d of %d: %w", i, n, err)
		}
		c := Call{N: i, URL: u, Status: res.Status, Elapsed: time.Since(began), Body: buyer.BodyValue(res.Body),
			Payment: res.View(), Receipt: res.Receipt}
		calls = append(calls, c)
		if each != nil {
			each(c)
		}
		if !res.Paid() {
			return calls, fmt.Errorf("paid call %d of %d: HTTP %d without a settled payment: %s", i, n, res.Status, strings.TrimSpace(string(res.Body)))
		}
	}
	return calls, nil
}

// Summary reads the verifier's own /metrics over HTTP and builds the
// earnings snapshot: per offer and chain, charged calls, exact revenue from
// the atomic-units counter, last settlement and settlement rate.
func (s *Stack) Summary(ctx context.Context) (earnings.Snapshot, error) {
	src := earnings.NewMetricsSource(s.MetricsURL)
	src.Client = s.client
	now := s.now()
	d, err := src.Fetch(ctx, earnings.Window24h, now)
	if err != nil {
		return earnings.Snapshot{}, err
	}
	return earnings.Build(d, earnings.Window24h, now, s.Registry), nil
}

// Close stops every server, the facilitator and the chain, and removes the
// stack file. Safe to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		if s.stackFile != "" {
			_ = stackfile.Remove(s.stackFile, os.Getpid())
		}
		s.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Verifier first (it calls the facilitator and the upstream), then
		// the rest in reverse start order.
		for i := len(s.servers) - 1; i >= 0; i-- {
			if err := s.servers[i].Shutdown(ctx); err != nil {
				s.closeErr = errors.Join(s.closeErr, err)
			}
		}
		if s.gate != nil {
			s.gate.Close()
		}
		if s.fac != nil {
			s.fac.Close()
		}
		if s.Chain != nil {
			if err := s.Chain.Close(); err != nil {
				s.closeErr = errors.Join(s.closeErr, err)
			}
		}
	})
	return s.closeErr
}
