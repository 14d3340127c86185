package buyer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/obolstack/obol/internal/x402"
)

// A host that redirects the unpaid request to another host answering 402
// never asked for a payment: the payment goes to the host that did.
func TestUnpaidRedirectTo402OnAnotherHostPaysThatHost(t *testing.T) {
	s, srv := newSeller(t, 2, usdcReq("1000"))
	var paidAtFront atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" || r.Header.Get(x402.HeaderXPayment) != "" {
			paidAtFront.Add(1)
		}
		http.Redirect(w, r, srv.URL+"/weather", http.StatusFound)
	}))
	defer front.Close()
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/weather", nil)
	res, err := newPayer(t).Do(context.Background(), req)
	if n := paidAtFront.Load(); n != 0 {
		t.Fatalf("the payment was sent %d time(s) to the redirecting host, which never asked for it", n)
	}
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Status != 200 || !res.Paid() || len(s.Payments()) != 1 {
		t.Fatalf("status %d, paid %v, seller saw %d payments", res.Status, res.Paid(), len(s.Payments()))
	}
}

// A seller that redirects the paid request to another origin does not get
// the payment forwarded there, nor the request.
func TestPaidRequestNeverFollowsRedirectToAnotherOrigin(t *testing.T) {
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.WriteString(w, "elsewhere")
	}))
	defer other.Close()
	s, _ := newSeller(t, 2, usdcReq("1000"))
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			http.Redirect(w, r, other.URL, http.StatusFound)
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer redirect.Close()
	req, _ := http.NewRequest(http.MethodGet, redirect.URL, nil)
	res, err := newPayer(t).Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the paid request followed a redirect to another origin (%d request(s) there)", n)
	}
	if res.Status != http.StatusFound {
		t.Fatalf("status %d, want the 302 returned as the answer", res.Status)
	}
}

// Credentials reach a seller only when the policy allows them by name.
func TestCredentialsNotForwardedUnlessAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		s, srv := newSeller(t, 2, usdcReq("1000"))
		var got atomic.Value
		got.Store(http.Header{})
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Store(r.Header.Clone())
			s.ServeHTTP(w, r)
		}))
		defer front.Close()
		_ = srv
		req, _ := http.NewRequest(http.MethodGet, front.URL, nil)
		req.Header.Set("Authorization", "Bearer caller-secret")
		req.Header.Set("Cookie", "session=caller")
		req.Header.Set("Proxy-Authorization", "Basic eA==")
		req.Header.Set("X-Internal-Token", "t")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "1")
		p := newPayer(t)
		p.Headers = HeaderPolicy{Strip: []string{"X-Internal-Token"}}
		if allow {
			p.Headers.Allow = []string{"authorization"}
		}
		if _, err := p.Do(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		h := got.Load().(http.Header)
		if (h.Get("Authorization") != "") != allow {
			t.Fatalf("allow=%v: Authorization %q reached the seller", allow, h.Get("Authorization"))
		}
		for _, name := range []string{"Cookie", "Proxy-Authorization", "X-Internal-Token", "X-Hop"} {
			if h.Get(name) != "" {
				t.Fatalf("allow=%v: %s reached the seller", allow, name)
			}
		}
	}
}
