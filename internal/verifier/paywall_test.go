package verifier

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/x402"
)

// chromeAccept is the Accept header Chromium sends for a page load.
const chromeAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

func TestPrefersHTML(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"*/*"}, false}, // curl, Go, most SDKs
		{[]string{"application/json"}, false},
		{[]string{"application/json, text/plain, */*"}, false}, // axios
		{[]string{chromeAccept}, true},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, true}, // Firefox
		{[]string{"text/html"}, true},
		{[]string{"TEXT/HTML; charset=utf-8"}, true},
		{[]string{"text/*"}, true},
		{[]string{"text/html", "application/json"}, false},                     // two values, a tie: JSON
		{[]string{"application/json, text/html"}, false},                       // a tie: JSON
		{[]string{"text/html, application/json;q=0.9"}, true},                  //
		{[]string{"application/json;q=0.5, text/html;q=0.6"}, true},            //
		{[]string{"text/html;q=0.5, */*"}, false},                              // anything, HTML only second
		{[]string{"text/html;q=0"}, false},                                     // refused
		{[]string{"text/html;q=0, */*;q=0.1"}, false},                          //
		{[]string{"text/*;q=0.2, text/html;q=0.9, application/*;q=0.5"}, true}, // the most specific range wins
		{[]string{"text/html;q=0.1, text/*;q=1, application/json;q=0.5"}, false},
		{[]string{"text/html;q=abc"}, false}, // malformed q: the range is dropped
		{[]string{"text/html;q=2"}, false},
		{[]string{"application/json;q=0.5, */*"}, false}, // */* never counts for HTML
		{[]string{"html"}, false},
		{[]string{"*/html"}, false},
	} {
		if got := prefersHTML(tc.accept); got != tc.want {
			t.Errorf("prefersHTML(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func htmlRequest(target, accept string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}

func TestPaywallPageForBrowsers(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))

	api := g.do(htmlRequest("http://shop.example/weather/today?city=Paris", "*/*"))
	w := g.do(htmlRequest("http://shop.example/weather/today?city=Paris", chromeAccept))
	if w.Code != http.StatusPaymentRequired || api.Code != http.StatusPaymentRequired {
		t.Fatalf("status: browser %d, API client %d; want 402 for both", w.Code, api.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("browser Content-Type %q, want HTML", ct)
	}
	if ct := api.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("*/* Content-Type %q, want the JSON challenge", ct)
	}
	// Programmatic clients that read the header still can, from either answer.
	if got, want := w.Header().Get(x402.HeaderPaymentRequired), api.Header().Get(x402.HeaderPaymentRequired); got == "" || got != want {
		t.Fatalf("PAYMENT-REQUIRED on the HTML answer %q, want the JSON answer's %q", got, want)
	}
	c, err := x402.ParseChallenge(w.Header(), w.Body.Bytes())
	if err != nil || c.Requirements[0].Amount != "1000" {
		t.Fatalf("challenge from the HTML answer's header: %+v, %v", c, err)
	}
	for _, h := range []string{"Vary", "Access-Control-Expose-Headers", "Content-Security-Policy"} {
		if w.Header().Get(h) == "" {
			t.Errorf("HTML answer lacks %s", h)
		}
	}
	if !strings.Contains(api.Header().Get("Vary"), "Accept") {
		t.Errorf("JSON answer Vary %q: caches must key on Accept", api.Header().Get("Vary"))
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream called for an unpaid request")
	}
	if n := counter(t, g, "required", "weather"); n != 2 {
		t.Errorf("payment_required{offer=weather} = %v, want 2: the paywall is a 402 like any other", n)
	}

	page := w.Body.String()
	for _, want := range []string{
		"<h1>Payment required</h1>",
		"Weather now costs <strong>0.001 USDC</strong> per request, paid on base-sepolia.",
		"http://shop.example/weather/today?city=Paris",
		"0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
		"eip155:84532",
		"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
		"obol buy pay &#39;http://shop.example/weather/today?city=Paris&#39; --key-file buyer.key --max-amount 0.001 --chain base-sepolia",
		"&#34;x402Version&#34;: 2",
		"&#34;amount&#34;: &#34;1000&#34;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	for _, banned := range []string{"<script", "<link", "<img", "src=", "http://fonts", "https://"} {
		if strings.Contains(page, banned) {
			t.Errorf("page contains %q: it must load nothing and need no script", banned)
		}
	}
}

func TestPaywallEscapesOfferStrings(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	hostile := `<script>alert(1)</script><img src=x onerror=alert(2)> & "quoted" 'single'`
	doc := strings.Replace(proxyDoc(up.URL), "description: Weather now", "description: '"+strings.ReplaceAll(hostile, "'", "''")+"'", 1)
	g := newGate(t, doc)
	w := g.do(htmlRequest(`http://shop.example/weather/%22%3E%3Cscript%3Ealert(3)%3C/script%3E?x='%3Cb%3E`, chromeAccept))
	if w.Code != http.StatusPaymentRequired || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	page := w.Body.String()
	for _, bad := range []string{"<script", "<img", "<b>", "onerror=alert(2)>"} {
		if strings.Contains(page, bad) {
			t.Errorf("hostile offer string reached the page as markup (%q):\n%s", bad, page)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &#34;quoted&#34; &#39;single&#39;") {
		t.Errorf("description not shown escaped:\n%s", page)
	}
	// The JSON in the page is the challenge, escaped once for HTML.
	body := page[strings.LastIndex(page, "<pre><code>")+len("<pre><code>"):]
	body = body[:strings.Index(body, "</code></pre>")]
	var pr x402.PaymentRequiredV2
	if err := json.Unmarshal([]byte(htmlUnescape(body)), &pr); err != nil || pr.Accepts[0].Amount != "1000" {
		t.Fatalf("requirements JSON on the page: %v %+v\n%s", err, pr, body)
	}
	if pr.Resource == nil || pr.Resource.Description != hostile {
		t.Fatalf("description in the page's JSON %+v, want the original text", pr.Resource)
	}
}

// htmlUnescape undoes html/template's escaping of text.
func htmlUnescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+", "&amp;", "&").Replace(s)
}

func TestPaywallOnlyForUnpaidRequests(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	// A payment that is malformed: 400 JSON as before, whatever Accept says.
	r := htmlRequest("http://shop.example/weather/today", chromeAccept)
	r.Header.Set(x402.HeaderPaymentSignature, base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2}`)))
	if w := g.do(r); w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("malformed payment from a browser: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	// A well-formed payment the gate refuses (wrong amount): the JSON 402.
	req := challenge(t, g.h, "http://shop.example/weather/today")
	req.Amount = "999"
	name, value := newBuyer(t).pay(t, g.evm, x402.Version2, req)
	r = htmlRequest("http://shop.example/weather/today", chromeAccept)
	r.Header.Set(name, value)
	w := g.do(r)
	if w.Code != http.StatusPaymentRequired || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("refused payment from a browser: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	// A free route is served, never paywalled.
	if w := g.do(htmlRequest("http://shop.example/health", chromeAccept)); w.Code != http.StatusOK {
		t.Fatalf("free route from a browser: %d", w.Code)
	}
}

func TestPaywallInForwardAuthMode(t *testing.T) {
	t.Parallel()
	g := newGate(t, forwardAuthDoc(""))
	r := faRequest("/joke?q=1")
	r.Header.Set("Accept", chromeAccept)
	r.Header.Set(HeaderForwardedMethod, "POST")
	w := g.do(r)
	if w.Code != http.StatusPaymentRequired || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("forwardAuth browser: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if !strings.Contains(w.Body.String(), "obol buy pay &#39;https://api.example.com/joke?q=1&#39; -X POST --key-file buyer.key --max-amount 0.01 --chain base-sepolia") {
		t.Fatalf("pay line for the original request:\n%s", w.Body)
	}
	if w.Header().Get(x402.HeaderPaymentRequired) == "" {
		t.Fatal("no PAYMENT-REQUIRED header")
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://a.example/x":  "https://a.example/x",
		"https://a/x?c=P&d=1":  "'https://a/x?c=P&d=1'",
		"it's":                 `'it'\''s'`,
		"":                     "''",
		"a b":                  "'a b'",
		"$(rm -rf /)":          "'$(rm -rf /)'",
		"http://h/p;touch x`y": "'http://h/p;touch x`y'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
