package buy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/devstack"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Receipts are checked on the real dev chain (its RPC URL comes from the
// dev stack file, so --confirm is on by default): a real payment is
// confirmed; a seller that makes up a transaction, or passes off another
// payment's real transaction as this one's, exits 5 saying what was wrong.
func TestConfirmChecksTheReceiptOnChain(t *testing.T) {
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stack := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(stack, st.Info()); err != nil {
		t.Fatal(err)
	}
	t.Setenv(stackfile.EnvPath, stack)
	key := filepath.Join(t.TempDir(), "buyer.key")
	if err := evm.WriteKeyFile(key, st.Buyer.Key); err != nil {
		t.Fatal(err)
	}

	r := pay(t, st.URL(devstack.PathWeather), "--key-file", key)
	if r.err != nil || !regexp.MustCompile(`Paid .* confirmed on chain in block \d+`).MatchString(r.errOut) {
		t.Fatalf("real payment: %v\n%s", r.err, r.errOut)
	}
	realTx := regexp.MustCompile(`transaction  (0x[0-9a-f]{64})`).FindStringSubmatch(r.errOut)
	if realTx == nil {
		t.Fatalf("no transaction in\n%s", r.errOut)
	}

	// A seller on the dev token that settles nothing: its receipt names a
	// made-up transaction, or the real one of the payment above.
	req := buyertest.USDCBaseSepolia(st.PriceAtomic.String(), st.Seller.Address)
	req.Network, req.NetworkV1, req.Asset = st.Token.Chain, "", st.Token.Address.Hex()
	req.Extra.Name, req.Extra.Version = st.Token.EIP712Name, st.Token.EIP712Version
	fake, _ := buyertest.New(t, x402.Version2, req)
	fake.Registry = st.Registry
	for _, tc := range []struct {
		name, tx, want string
	}{
		{"made-up", "", "was not found"},
		{"another payment's", realTx[1], "did not spend the authorization sent"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			fake.ServeHTTP(rec, r)
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			if v := rec.Header().Get(x402.HeaderPaymentResponse); v != "" && tc.tx != "" {
				sr, _ := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, v)
				sr.Transaction = tc.tx
				enc, _ := x402.EncodeSettleResponse(*sr)
				w.Header().Set(x402.HeaderPaymentResponse, enc)
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}))
		r := pay(t, srv.URL+"/weather", "--key-file", key, "--confirm-timeout", "1s")
		srv.Close()
		if r.code() != ExitUnconfirmed || !strings.Contains(r.err.Error(), tc.want) || strings.Contains(r.errOut, "Paid ") {
			t.Errorf("%s transaction: exit %d, err %v, want exit %d saying %q and no \"Paid\"\n%s", tc.name, r.code(), r.err, ExitUnconfirmed, tc.want, r.errOut)
		}
	}

}
